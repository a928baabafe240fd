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

# The store tests start a private PostGIS cluster (scripts/pg.sh) when DATABASE_URL names none;
# stop it when the run ends, whatever happened.
trap 'scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT

echo "test: cargo test"
log=target/test-output.log
# What kuzet publishes during this run is recorded here (tests/common/record.rs) and checked
# against docs/asyncapi.yaml below: this run's only.
rm -rf target/asyncapi-payloads
# --no-fail-fast: a failing test binary does not keep the others from running (and reporting).
if cargo test --locked --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee "$log"; then rc=0; else rc=$?; fi

# The road graph checked by independent readers: pyosmium for the ways, SciPy for the times.
py=target/tools-venv/bin/python
extract=target/osm/Helsinki.osm.pbf
for check in check_graph check_times; do
  echo "test: tests/roads/$check.py"
  if ! "$py" "tests/roads/$check.py" --kuzet target/debug/kuzet --extract "$extract" 2>&1 | tee -a "$log"; then
    rc=1
  fi
done

# The face embeddings computed in Rust (the crops and embeddings vision/tests/faces.rs wrote)
# against Python's onnxruntime on the same aligned crops.
echo "test: tests/vision/reference.py compare-crops"
if ! "$py" tests/vision/reference.py compare-crops target/vision-parity target/vision-parity/rust.json 2>&1 | tee -a "$log"; then
  rc=1
fi

# The parsers of outside input under libFuzzer, 20 s a target (nightly, fuzz/ is a workspace of
# its own; the first run builds it, later runs reuse fuzz/target and the corpus).
echo "test: scripts/fuzz.sh smoke"
if ! scripts/fuzz.sh smoke 2>&1 | tee -a "$log"; then
  rc=1
fi

# The MQTT contract: docs/asyncapi.yaml parsed by the AsyncAPI parser, and every payload kuzet
# published during the tests above, and every example in docs/mqtt.md, validated against it.
echo "test: scripts/asyncapi-check.sh"
if ! scripts/asyncapi-check.sh 2>&1 | tee -a "$log"; then
  rc=1
fi

# The HTTP API against its OpenAPI document: a real kuzet, schemathesis once per role.
echo "test: scripts/openapi-check.sh"
if ! scripts/openapi-check.sh 2>&1 | tee -a "$log"; then
  rc=1
fi

# Add up cargo's "test result: ok. N passed; M failed; K ignored; ..." lines (doc-tests too)
# and the road, vision, fuzz, AsyncAPI and OpenAPI checks' "roads ...: N passed, M failed" lines.
awk '/^test result:|^roads [a-z]+: [0-9]+ passed|^vision parity: [0-9]+ passed|^fuzz [a-z]+: [0-9]+ passed|^asyncapi: [0-9]+ passed|^openapi [a-z]+: [0-9]+ passed/ { gsub(",", ""); for (i = 1; i < NF; i++) {
       if ($(i + 1) ~ /^passed/) p += $i
       if ($(i + 1) ~ /^failed/) f += $i
       if ($(i + 1) ~ /^ignored/) s += $i } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$rc"
