#!/usr/bin/env bash
# Everything CI checks: set-up, the compose file, a build of every target, the whole test suite.
# Tests start their own private Mosquitto processes on free ports; they need the mosquitto
# binaries, which Debian puts in /usr/sbin (mosquitto) and /usr/bin (the clients).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
scripts/check-compose.sh

echo "test: cargo build"
cargo build --locked --workspace --all-targets

echo "test: cargo test"
log=target/test-output.log
if cargo test --locked --workspace -- --test-threads=2 2>&1 | tee "$log"; then rc=0; else rc=$?; fi

# Add up cargo's "test result: ok. N passed; M failed; K ignored; ..." lines (doc-tests too).
awk '/^test result:/ { for (i = 1; i < NF; i++) {
       if ($(i + 1) ~ /^passed/) p += $i
       if ($(i + 1) ~ /^failed/) f += $i
       if ($(i + 1) ~ /^ignored/) s += $i } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$rc"
