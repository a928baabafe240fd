#!/usr/bin/env bash
# Benchmarks (release build). Arguments go to `kuzet-bench`, which starts its own private broker.
# The store benchmarks use DATABASE_URL, or a private PostGIS cluster (scripts/with-db.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
# The whole workspace: kuzet, kuzet-bench and kuzet-camsim (the stand-in cameras).
cargo build --release --workspace
scripts/with-db.sh target/release/kuzet-bench "$@"
