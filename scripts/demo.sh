#!/usr/bin/env bash
# The demo (release build): kuzet with its embedded broker and a simulated city, recording to
# DATABASE_URL or to a private PostGIS cluster (scripts/pg.sh) started here and stopped at the
# end. Arguments go to `kuzet demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

scripts/setup.sh
if [ -z "${DATABASE_URL:-}" ]; then
  trap 'scripts/pg.sh stop >/dev/null 2>&1 || true' EXIT
  line=$(scripts/pg.sh start | tail -n 1)
  export "${line?}"
fi
export KUZET_DATABASE__URL="$DATABASE_URL"
cargo build --release
target/release/kuzet demo --config config/demo.toml "$@"
