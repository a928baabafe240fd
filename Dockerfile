# kuzet: multi-stage build. Build: docker build -t kuzet .  (see docker-compose.yml)
FROM rust:1-bookworm AS builder
# GStreamer and its RTSP server: the camera pipelines and kuzet-camsim link them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libgstreamer1.0-dev \
       libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# kuzet and kuzet-camsim; the demo and benchmark tools (kuzet-tools) are not shipped.
RUN cargo build --release --locked --workspace --exclude kuzet-tools

# The pages' libraries from npm, as web/package-lock.json pins them (not the test tools).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY web/console console
COPY web/oversight oversight
COPY web/tablet tablet
COPY web/static static

FROM debian:bookworm-slim
# GStreamer at run time: decoders for the cameras' streams (RTSP, H.264/H.265, MJPEG).
# Mosquitto: the broker kuzet configures and runs as its child (mosquitto_passwd comes with it).
# ONNX Runtime and the face models are not in the image: scripts/models.sh prepares them,
# mounted at /var/lib/kuzet/models (see docker-compose.yml).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libgstreamer1.0-0 \
       gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
       gstreamer1.0-plugins-ugly gstreamer1.0-libav libgstrtspserver-1.0-0 mosquitto \
    && rm -rf /var/lib/apt/lists/*
# Run unprivileged: kuzet needs no root inside the container. A fixed uid, so files on the host
# (scripts/compose-secrets.sh) can be given to it.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin kuzet
# The folders kuzet writes, owned by its user: a named volume mounted on one starts as a copy,
# writable by kuzet (audit: ready for a volume of its own).
RUN install -d -o kuzet -g kuzet -m 0750 /var/lib/kuzet /var/lib/kuzet/spool \
       /var/lib/kuzet/evidence /var/lib/kuzet/broker /var/lib/kuzet/audit
COPY --from=builder /src/target/release/kuzet /src/target/release/kuzet-camsim /usr/local/bin/
COPY --from=web /web /usr/share/kuzet/web
ENV KUZET_HTTP__WEB_DIR=/usr/share/kuzet/web
USER kuzet
ENTRYPOINT ["kuzet"]
