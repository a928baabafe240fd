#!/usr/bin/env bash
# A private PostgreSQL 15 + PostGIS cluster for the tests and the demo: its own data folder, its
# own free port on 127.0.0.1, its own Unix socket folder, trust authentication for the
# `postgres` superuser. Nothing here touches the system-wide cluster. Safe to run as root (the
# server runs as user `postgres`, which initdb and postgres require) and safe to run again.
#
#   scripts/pg.sh start [DIR]  initdb DIR/data if there is no cluster yet, start it on a free port
#                              (the previous one if it is still free), make sure database `kuzet`
#                              exists with the postgis and pgcrypto extensions (template1
#                              too, for fresh test databases), and print
#                              DATABASE_URL=postgres://postgres@127.0.0.1:PORT/kuzet as the last
#                              line of stdout (progress goes to stderr). Already running: prints
#                              that line only.
#   scripts/pg.sh stop [DIR]   fast shutdown if it runs (exit 0 either way)
#   scripts/pg.sh url [DIR]    prints postgres://postgres@127.0.0.1:PORT/kuzet if it runs,
#                              exit 1 otherwise
#
# DIR defaults to target/pg in the repository; a relative DIR is taken from the current folder.
# Layout: DIR/data (the cluster), DIR/sock (Unix socket), DIR/pg.log (server log), DIR/port,
# DIR/pg_hba.conf (written at every start), DIR/tls (below).
#
# TLS: the server has ssl=on with a certificate for localhost and 127.0.0.1 signed by a test CA
# made once with openssl: DIR/tls/ca.crt is what a client verifies it with
# (sslmode=verify-full&sslrootcert=DIR/tls/ca.crt). Plaintext is still accepted, except for the
# role kuzet_tls_only (LOGIN, no password, no rights), which may connect over TLS only. Clients
# that do not ask for TLS (sslmode=prefer, sqlx's and psql's default) get it unverified.
# Started as root, DIR is owned by `postgres` and every folder above it must be traversable by
# that user: folders inside the repository (e.g. target/) get o+x, anything outside is refused
# with a message (a folder under /root is not traversable; /tmp is).
#
# For tests only: fsync is off and anyone who can reach 127.0.0.1:PORT is superuser.
set -euo pipefail

# Hermetic: no PGHOST, PGPORT, PGOPTIONS, PGDATA ... from the caller's environment.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^PG' || true)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${KUZET_PG_BIN:-/usr/lib/postgresql/15/bin}
PGMAJOR=15
DB=kuzet

log() { printf 'pg: %s\n' "$*" >&2; }
die() { printf 'pg: error: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: scripts/pg.sh start|stop|url [DIR]"; }

cmd=${1:-}
[ $# -le 2 ] || usage
case "$cmd" in start | stop | url) ;; *) usage ;; esac

DIR=${2:-$ROOT/target/pg}
case "$DIR" in /*) ;; *) DIR=$PWD/$DIR ;; esac
# Normalise (the folder may not exist yet): collapse //, /./ and a trailing /.
DIR=$(realpath -m -- "$DIR")
# pg_ctl hands -o to a shell and Unix socket paths are short: keep the path plain.
[[ "$DIR" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR must be a plain path (letters, digits, . _ / + -): $DIR"
# sun_path holds 107 bytes: DIR/sock/.s.PGSQL.NNNNN must fit.
((${#DIR} <= 80)) || die "DIR is too long for a Unix socket path (${#DIR} > 80 characters): $DIR"
DATA=$DIR/data
SOCK=$DIR/sock

AS_ROOT=0
[ "$(id -u)" -eq 0 ] && AS_ROOT=1

# as_pg CMD...: runs CMD as user postgres when we are root (initdb, pg_ctl and postgres refuse
# root), as ourselves otherwise. From / so that an unreadable current folder does not matter.
as_pg() {
  if ((AS_ROOT)); then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# psql_db DB ARGS...: psql over TCP to our cluster as postgres, stopping at the first error.
psql_db() {
  local db=$1
  shift
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d "$db" "$@"
}

# running: true if the cluster in DATA runs (pg_ctl checks that postmaster.pid names a live
# postmaster); sets PORT from postmaster.pid (line 4), which is what the server really uses.
running() {
  [ -f "$DATA/PG_VERSION" ] || return 1
  as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || return 1
  # A postmaster killed outright stays a zombie until its parent (often PID 1) reaps it, and a
  # zombie still answers kill -0: that is a dead server. Wait for it to go (pg_ctl start and
  # postgres would take its pid file for a live one meanwhile).
  local pid i
  pid=$(sed -n 1p "$DATA/postmaster.pid" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && zombie "$pid"; then
    log "postmaster $pid is dead (a zombie); waiting for it to be reaped"
    for i in $(seq 100); do
      zombie "$pid" || break
      sleep 0.1
    done
    return 1
  fi
  PORT=$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)
  [[ "$PORT" =~ ^[0-9]+$ ]] || PORT=$(cat "$DIR/port" 2>/dev/null || true)
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "cluster in $DATA runs but its port is unknown"
}

# zombie PID: the process exists and is a zombie.
zombie() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" = Z ]
}

url() { printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$PORT" "$DB"; }

# tls_files: a test CA and the server's certificate in DIR/tls, made once; the key belongs to
# the server's user (PostgreSQL refuses a key others can read).
tls_files() {
  local t=$DIR/tls
  [ -f "$t/server.crt" ] && [ -f "$t/server.key" ] && [ -f "$t/ca.crt" ] && return
  command -v openssl >/dev/null || die "openssl not found (Debian: apt-get install openssl)"
  log "making a test CA and a server certificate in $t"
  rm -rf "$t"
  mkdir -p "$t"
  chmod 0755 "$t"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=kuzet pg.sh test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null ||
    die "openssl could not make the test CA"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$t/server.key.new" -out "$t/server.csr" 2>/dev/null || die "openssl could not make the server key"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    >"$t/server.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 3650 \
    -extfile "$t/server.ext" -out "$t/server.crt.new" 2>/dev/null || die "openssl could not sign the server certificate"
  chmod 0600 "$t/server.key.new" "$t/ca.key"
  chmod 0644 "$t/server.crt.new" "$t/ca.crt"
  if ((AS_ROOT)); then chown postgres:postgres "$t/server.key.new" "$t/server.crt.new"; fi
  # The key last: its presence says the set is complete.
  mv "$t/server.crt.new" "$t/server.crt"
  mv "$t/server.key.new" "$t/server.key"
}

# hba_file: who may connect how. Trust on loopback, as before, but kuzet_tls_only over TLS only.
hba_file() {
  cat >"$DIR/pg_hba.conf" <<'HBA'
# Written by scripts/pg.sh at every start. First match wins.
local     all  all                          trust
hostssl   all  kuzet_tls_only  127.0.0.1/32  trust
hostssl   all  kuzet_tls_only  ::1/128       trust
host      all  kuzet_tls_only  all           reject
host      all  all             127.0.0.1/32  trust
host      all  all             ::1/128       trust
HBA
  chmod 0644 "$DIR/pg_hba.conf"
}

# port_free PORT: nothing listens on 127.0.0.1:PORT (nor on the wildcard address).
port_free() {
  ! ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# free_port: prints a free TCP port on 127.0.0.1, letting the kernel pick it.
free_port() {
  local py p i
  for py in /usr/bin/python3 python3; do
    if p=$("$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [[ "$p" =~ ^[0-9]+$ ]]; then
      echo "$p"
      return
    fi
  done
  # No python: random ports above the usual service range, checked with ss.
  for i in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    if port_free "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# ensure_traversable: every folder above DIR can be entered by user postgres; folders inside
# the repository get o+x, others are refused.
ensure_traversable() {
  as_pg test -x "$DIR/" && return
  local d=$DIR
  local up=()
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    up=("$d" "${up[@]}")
  done
  for d in "${up[@]}"; do
    as_pg test -x "$d/" && continue
    case "$d/" in
      "$ROOT"/*)
        log "chmod o+x $d (so that user postgres can reach $DIR)"
        chmod o+x "$d"
        ;;
      *) die "user postgres cannot enter $d; pick a DIR it can reach (e.g. under /tmp or target/)" ;;
    esac
  done
}

# prepare_dir: DIR exists, is owned by postgres (when we are root) and reachable.
prepare_dir() {
  mkdir -p "$DIR"
  if ((AS_ROOT)); then
    id -u postgres >/dev/null 2>&1 || die "user postgres does not exist (scripts/setup.sh installs PostgreSQL)"
    chown postgres:postgres "$DIR"
    ensure_traversable
  fi
  as_pg test -w "$DIR" || die "$DIR is not writable by $( ((AS_ROOT)) && echo postgres || id -un)"
}

# init_cluster: initdb DATA unless it holds a cluster of our major version.
init_cluster() {
  if [ -f "$DATA/PG_VERSION" ]; then
    local v
    v=$(cat "$DATA/PG_VERSION")
    [ "$v" = "$PGMAJOR" ] || die "$DATA holds a PostgreSQL $v cluster, $PGMAJOR expected: remove $DIR"
    return
  fi
  # No PG_VERSION: nothing there, or what an interrupted initdb left.
  [ -e "$DATA" ] && { log "removing incomplete cluster $DATA"; rm -rf "$DATA"; }
  log "initdb $DATA"
  if ! as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
    >"$DIR/initdb.log" 2>&1; then
    cat "$DIR/initdb.log" >&2
    die "initdb failed (output above and in $DIR/initdb.log)"
  fi
}

start() {
  [ -x "$PGBIN/pg_ctl" ] || die "$PGBIN/pg_ctl not found: run scripts/setup.sh (postgresql-15)"
  prepare_dir
  # One start at a time per DIR (parallel test binaries may all call this).
  exec 9>"$DIR/.lock"
  flock 9
  if running; then
    [ "$(psql_db postgres -tAc 'SHOW ssl' 2>/dev/null)" = on ] ||
      log "warning: this cluster runs without TLS (an older pg.sh started it): stop it and start it again"
    echo "DATABASE_URL=$(url)"
    return
  fi
  init_cluster
  tls_files
  hba_file
  as_pg mkdir -p "$SOCK"
  as_pg chmod 0700 "$SOCK"
  local attempt prev
  prev=$(cat "$DIR/port" 2>/dev/null || true)
  for attempt in 1 2 3; do
    # The previous port if it is still free, so the URL stays the same across restarts.
    if [[ "$prev" =~ ^[0-9]+$ ]] && port_free "$prev"; then PORT=$prev; else PORT=$(free_port); fi
    prev=
    log "starting on 127.0.0.1:$PORT (log $DIR/pg.log)"
    # 9>&-: the server must not inherit (and so hold forever) the lock.
    if as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/pg.log" -t 60 -w \
      -o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1 -c fsync=off -c hba_file=$DIR/pg_hba.conf \
        -c ssl=on -c ssl_cert_file=$DIR/tls/server.crt -c ssl_key_file=$DIR/tls/server.key" \
      start >/dev/null 9>&-; then
      break
    fi
    # Most likely someone took the port between the check and the start: try another one.
    log "start failed (attempt $attempt); last lines of $DIR/pg.log:"
    tail -n 5 "$DIR/pg.log" >&2 || true
    ((attempt < 3)) || die "cannot start PostgreSQL in $DATA"
  done
  echo "$PORT" >"$DIR/port"
  # The extensions go into template1 too, so that every database made with a plain CREATE
  # DATABASE (a test's fresh database) has them already: the migration's CREATE EXTENSION IF
  # NOT EXISTS is then a no-op instead of ~0.6 s of PostGIS set-up per database.
  psql_db template1 -c 'SET client_min_messages = warning' \
    -c 'CREATE EXTENSION IF NOT EXISTS postgis' -c 'CREATE EXTENSION IF NOT EXISTS pgcrypto'
  if [ "$(psql_db postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    log "creating database $DB"
    psql_db postgres -c "CREATE DATABASE $DB"
  fi
  psql_db "$DB" -c 'SET client_min_messages = warning' \
    -c 'CREATE EXTENSION IF NOT EXISTS postgis' -c 'CREATE EXTENSION IF NOT EXISTS pgcrypto'
  if [ "$(psql_db postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'kuzet_tls_only'")" != 1 ]; then
    psql_db postgres -c 'CREATE ROLE kuzet_tls_only LOGIN'
  fi
  echo "DATABASE_URL=$(url)"
}

stop() {
  [ -d "$DIR" ] || return 0
  [ -f "$DATA/PG_VERSION" ] || { log "no cluster in $DATA"; return 0; }
  exec 9>"$DIR/.lock"
  flock 9
  if running; then
    log "stopping $DATA (port $PORT)"
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -t 60 -w stop >/dev/null || die "pg_ctl stop failed"
  else
    log "not running: $DATA"
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  url) running && url || { log "not running: $DATA"; exit 1; } ;;
esac
