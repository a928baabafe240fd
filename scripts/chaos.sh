#!/usr/bin/env bash
# The long chaos run (release build): the chaos test of `make test` (tests/chaos.rs) with more
# kills. kuzet is SIGKILLed at the test's chosen moments and at KILLS random ones, the broker
# BROKER_KILLS times among them, under a steady load of alarms worked to cleared; every
# message is then accounted for. The summary line starts with "chaos:".
#
#   scripts/chaos.sh [KILLS [BROKER_KILLS [SEED]]]     defaults: 100 5 20261206
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
export KUZET_CHAOS_KILLS=${1:-100}
export KUZET_CHAOS_BROKER_KILLS=${2:-5}
export KUZET_CHAOS_SEED=${3:-20261206}
# The test starts its own PostGIS cluster (it stops it under kuzet) and its own Mosquitto.
cargo test --release --locked --test chaos -- --nocapture 2>&1 | tee target/chaos-release.log
grep '^chaos:' target/chaos-release.log
