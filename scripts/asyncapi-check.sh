#!/usr/bin/env bash
# Checks the MQTT contract's AsyncAPI document (docs/asyncapi.yaml) with the AsyncAPI parser,
# and validates against it what kuzet published during the test suite and every example in
# docs/mqtt.md (tools/asyncapi/check.mjs says how). Run it after `cargo test`: the tests' own
# subscriber (tests/common/record.rs) writes what kuzet published to target/asyncapi-payloads/.
# Clear that folder before the tests for a check of one run only.
#
#   scripts/asyncapi-check.sh [PAYLOAD_DIR]
#
# The checker's npm packages (pinned by tools/asyncapi/package-lock.json) are installed into
# tools/asyncapi/node_modules the first time, and again when the lock file changes; from npm's
# cache when there is no network. Prints `asyncapi <channel>: N checked` per channel and
# `asyncapi: N passed, M failed`; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tools/asyncapi
payloads="${1:-${KUZET_ASYNCAPI_PAYLOADS:-${CARGO_TARGET_DIR:-target}/asyncapi-payloads}}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "asyncapi: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

# npm keeps its own copy of the lock file in node_modules: older than ours, or missing, means
# the packages are not (or no longer) the ones locked.
installed="$dir/node_modules/.package-lock.json"
if [ ! -f "$installed" ] || [ "$dir/package-lock.json" -nt "$installed" ]; then
  quiet=(--no-audit --no-fund --loglevel=error)
  if ! (cd "$dir" && { npm ci --offline "${quiet[@]}" || npm ci --prefer-offline "${quiet[@]}"; } >/dev/null 2>&1); then
    echo "asyncapi: cannot install the checker's packages: run npm ci in $dir once with a network" >&2
    exit 1
  fi
fi

exec node "$dir/check.mjs" --payloads "$payloads"
