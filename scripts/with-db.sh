#!/usr/bin/env bash
# Runs a command with DATABASE_URL set: the caller's, or that of a private PostGIS cluster
# (scripts/pg.sh) started for the command and stopped when it ends; then KUZET_TEST_PG_CA names
# the CA that cluster's certificate verifies with (tests/tls.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DATABASE_URL:-}" ]; then
  trap 'scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT
  line=$(scripts/pg.sh start | tail -n 1)
  export "${line?}"
  export KUZET_TEST_PG_CA=$PWD/target/pg/tls/ca.crt
fi
"$@"
