#!/usr/bin/env bash
# The demo (release build): kuzet with its own broker and a simulated city, recording to
# DATABASE_URL or to a private PostGIS cluster (scripts/with-db.sh). Arguments go to
# `kuzet-demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
# The whole workspace: kuzet, kuzet-demo and kuzet-camsim (the stand-in cameras).
cargo build --release --workspace
# kuzet takes its settings from KUZET_* variables only.
scripts/with-db.sh sh -c 'KUZET_DATABASE__URL="$DATABASE_URL" exec target/release/kuzet-demo --config config/demo.toml "$@"' demo "$@"
