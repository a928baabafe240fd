#!/usr/bin/env bash
# Benchmarks (release build). Arguments go to `kuzet bench`, which starts its own private broker.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
exec cargo run --release -- bench "$@"
