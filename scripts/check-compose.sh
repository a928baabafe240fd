#!/usr/bin/env bash
# Validates docker-compose.yml against the Compose specification bundled in check-jsonschema.
# Offline: no Docker engine and no network needed (there is no Docker engine on our machines).
set -euo pipefail
cd "$(dirname "$0")/.."

CJS=target/tools-venv/bin/check-jsonschema
[ -x "$CJS" ] || scripts/setup.sh --venv-only
"$CJS" --builtin-schema vendor.compose-spec docker-compose.yml
