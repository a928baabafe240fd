# kuzet: multi-stage build. Build: docker build -t kuzet .  (see docker-compose.yml)
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Run unprivileged: kuzet needs no root inside the container.
RUN useradd --system --no-create-home --shell /usr/sbin/nologin kuzet
COPY --from=builder /src/target/release/kuzet /usr/local/bin/kuzet
USER kuzet
ENTRYPOINT ["kuzet"]
