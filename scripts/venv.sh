# Shared by scripts/setup.sh and scripts/models.sh (sourced): the tools venv. The caller
# defines VENV, log and die.

# ensure_venv SPEC...: makes the tools venv and installs the pinned NAME==VERSION specs that
# are missing or at another version.
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
  local spec shown missing=()
  for spec in "$@"; do
    # Captured, not piped: `grep -q` exits early and pip's SIGPIPE would fail the pipeline.
    shown=$("$VENV/bin/python" -m pip show "${spec%%==*}" 2>/dev/null || true)
    grep -qx "Version: ${spec#*==}" <<<"$shown" || missing+=("$spec")
  done
  if ((${#missing[@]} == 0)); then
    log "present in $VENV: $*"
    return
  fi
  log "installing into $VENV: ${missing[*]}"
  # Binary wheels only: nothing is compiled here.
  "$VENV/bin/python" -m pip install -q --only-binary :all: "${missing[@]}" \
    || die "pip install failed: ${missing[*]}"
}
