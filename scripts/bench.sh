#!/usr/bin/env bash
# Benchmarks (release build). Arguments go to `kuzet bench`, which starts its own private broker.
# The store benchmarks use DATABASE_URL, or a private PostGIS cluster (scripts/pg.sh) started
# here and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
if [ -z "${DATABASE_URL:-}" ]; then
  trap 'scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT
  line=$(scripts/pg.sh start | tail -n 1)
  export "${line?}"
fi
cargo build --release
target/release/kuzet bench "$@"
