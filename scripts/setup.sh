#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine, run as root. Installs only what is missing:
# the system packages the tests and benchmarks use, and a Python venv with check-jsonschema
# (to validate docker-compose.yml offline). Safe to run again and again.
#
#   scripts/setup.sh             everything
#   scripts/setup.sh --venv-only only the tools venv (used by scripts/check-compose.sh)
#
# It never starts the system-wide Mosquitto: tests and benchmarks start private brokers on
# private ports. (apt may start the packaged service on install; nothing here relies on it.)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto mosquitto-clients python3-venv python3-pip build-essential pkg-config)
VENV=target/tools-venv
# Pinned: the Compose schema we validate against is bundled in this package.
CHECK_JSONSCHEMA=check-jsonschema==0.39.0

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ensure_apt PKG...: installs the packages that are not installed yet.
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "system packages present: $*"
    return
  fi
  command -v apt-get >/dev/null || die "apt-get not found (Debian 12 expected); install: ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || die "run as root to install: ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed: ${missing[*]}"
}

ensure_venv() {
  # Debian's python3 (its python3-venv is installed above), not whatever python3 is first on PATH.
  local py=/usr/bin/python3
  [ -x "$py" ] || py=$(command -v python3) || die "python3 not found"
  # A venv whose pip does not run (e.g. an interrupted creation) is made anew.
  if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$py" -m venv "$VENV" || die "python3 -m venv failed"
  fi
  # Captured, not piped: `grep -q` exits early and pip's SIGPIPE would fail the pipeline.
  local shown
  shown=$("$VENV/bin/python" -m pip show check-jsonschema 2>/dev/null || true)
  if grep -qx "Version: ${CHECK_JSONSCHEMA#*==}" <<<"$shown"; then
    log "$CHECK_JSONSCHEMA present in $VENV"
  else
    log "installing $CHECK_JSONSCHEMA into $VENV"
    "$VENV/bin/python" -m pip install -q "$CHECK_JSONSCHEMA" || die "pip install failed"
  fi
}

case "${1:-}" in
  --venv-only)
    ensure_apt python3-venv
    ensure_venv
    exit 0
    ;;
  "") ;;
  *) die "unknown argument: $1 (usage: scripts/setup.sh [--venv-only])" ;;
esac

command -v cargo >/dev/null \
  || die "cargo not found on PATH: install Rust (rustup) and add \$HOME/.cargo/bin to PATH"
log "$(cargo --version)"

ensure_apt "${APT_PACKAGES[@]}"
# mosquitto lives in /usr/sbin, which a non-login root shell may not have on PATH.
PATH="$PATH:/usr/sbin" command -v mosquitto >/dev/null || die "mosquitto binary not found"
ensure_venv
log "done"
