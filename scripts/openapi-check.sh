#!/usr/bin/env bash
# The HTTP API against its OpenAPI document: a real kuzet (its own broker, a private PostGIS
# cluster, a registry of a few devices) serves GET /api/v1/openapi.json; openapi-spec-validator
# checks the document, then schemathesis sends each operation generated requests, valid and
# not, once per role with that role's bearer token, and checks every answer: no 5xx
# (not_a_server_error), a status the document lists for the operation, a Content-Type it lists,
# a body that matches its schema. The live feed (a WebSocket) is left out.
#
#   scripts/openapi-check.sh        prints "openapi ROLE: N passed, M failed" per role (what
#                                   scripts/test.sh adds up), exits non-zero on any failure
#
# N and M count operations. Environment: KUZET_BIN (default target/debug/kuzet, built first),
# OPENAPI_MAX_EXAMPLES (test cases per operation and phase, default 50: about 1.5 minutes for the
# four roles on two cores), OPENAPI_SEED (default 1: the same requests every run). Work files
# (kuzet's log, settings, schemathesis' output and JUnit reports) go to target/openapi-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$PATH:/usr/sbin"

VENV=target/tools-venv
# Pinned, binary wheels only (scripts/venv.sh). One schemathesis worker: hypothesis parses
# lambdas' source with `ast` from several threads at once, which CPython 3.11 can fail on.
TOOLS=(openapi-spec-validator==0.9.0 schemathesis==4.32.5)
WORK=target/openapi-check
KUZET=${KUZET_BIN:-target/debug/kuzet}
MAX_EXAMPLES=${OPENAPI_MAX_EXAMPLES:-50}
SEED=${OPENAPI_SEED:-1}
ROLES=(dispatcher supervisor oversight officer)
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

log() { printf 'openapi-check: %s\n' "$*" >&2; }
die() { printf 'openapi-check: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv "${TOOLS[@]}"
py=$VENV/bin/python

if [ -z "${KUZET_BIN:-}" ]; then
  cargo build --locked -q --bin kuzet || die "cargo build --bin kuzet failed"
fi
[ -x "$KUZET" ] || die "no kuzet binary at $KUZET"

rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# The cluster's folder: a short path outside the repository (pg.sh's socket path limit).
PGDIR=$(mktemp -d /tmp/kuzet-openapi.XXXXXX)
kuzet_pid=""
cleanup() {
  if [ -n "$kuzet_pid" ] && kill -0 "$kuzet_pid" 2>/dev/null; then
    kill -TERM "$kuzet_pid" 2>/dev/null || true
    wait "$kuzet_pid" 2>/dev/null || true
  fi
  scripts/pg.sh stop "$PGDIR" >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
trap cleanup EXIT

line=$(scripts/pg.sh start "$PGDIR" 2>"$WORK/pg-start.log" | tail -n1) \
  || die "scripts/pg.sh start failed: $(tail -n3 "$WORK/pg-start.log")"
DATABASE_URL=${line#DATABASE_URL=}
[ "$DATABASE_URL" != "$line" ] || die "scripts/pg.sh start printed no DATABASE_URL"
export DATABASE_URL

# free_ports N: N ports free on 127.0.0.1 right now.
free_ports() {
  "$py" - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}
read -r HTTP_PORT MQTT_PORT WS_PORT < <(free_ports 3)
API=http://127.0.0.1:$HTTP_PORT/api/v1

# A few devices; throw-away broker passwords (a registry for tests may carry them).
device_pw() { "$py" -c 'import secrets; print(secrets.token_hex(16))'; }
BTN_PW=$(device_pw)
UNIT_PW=$(device_pw)
cat >"$WORK/registry.toml" <<TOML
[[sites]]
id = "school-1"
name = "School No. 1"
kind = "school"
location = { lat = 43.2551, lon = 76.9126 }

[[sites.buttons]]
id = "btn-1"
room = "entrance hall"
password = "$BTN_PW"

[[units]]
id = "unit-1"
callsign = "Berkut-1"
password = "$UNIT_PW"

[[units]]
id = "unit-2"
callsign = "Berkut-2"
password = "$(device_pw)"

[[cameras]]
id = "cam-1"
location = { lat = 43.2398, lon = 76.9455 }
site = "school-1"
TOML

cat >"$WORK/kuzet.toml" <<TOML
[broker]
listen = "127.0.0.1:$MQTT_PORT"
ws_listen = "127.0.0.1:$WS_PORT"
data_dir = "$WORK/broker"

[registry]
file = "$WORK/registry.toml"
credentials_file = "$WORK/credentials.passwd"

[database]
spool_dir = "$WORK/spool"

[http]
listen = "127.0.0.1:$HTTP_PORT"
secure_cookies = false

[vision]
evidence_dir = "$WORK/evidence"

[audit]
key_file = "$WORK/audit/checkpoint.key"
checkpoint_file = "$WORK/audit/checkpoints.jsonl"
TOML

log "starting kuzet (http 127.0.0.1:$HTTP_PORT, broker 127.0.0.1:$MQTT_PORT); log in $WORK/kuzet.log"
KUZET_DATABASE__URL=$DATABASE_URL "$KUZET" serve --config "$WORK/kuzet.toml" >"$WORK/kuzet.log" 2>&1 &
kuzet_pid=$!
for _ in $(seq 1 300); do
  if curl -sf -o "$WORK/openapi.json" "$API/openapi.json"; then break; fi
  kill -0 "$kuzet_pid" 2>/dev/null || die "kuzet stopped: $(tail -n5 "$WORK/kuzet.log")"
  sleep 0.2
done
[ -s "$WORK/openapi.json" ] || die "kuzet did not answer on $API/openapi.json"

log "openapi-spec-validator $API/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json" || die "the document is not a valid OpenAPI document"

# One user per role (the officer as unit-1), each signed in for a bearer token.
declare -A TOKEN
for role in "${ROLES[@]}"; do
  pw=$("$py" -c 'import secrets; print(secrets.token_hex(16))')
  unit=()
  [ "$role" = officer ] && unit=(--unit unit-1)
  printf '%s\n' "$pw" | "$KUZET" user add --username "check-$role" --role "$role" "${unit[@]}" \
    --by openapi-check --database-url "$DATABASE_URL" >/dev/null || die "kuzet user add $role failed"
  TOKEN[$role]=$(printf '{"username": "check-%s", "password": "%s"}' "$role" "$pw" \
    | curl -sf "$API/session" -H 'Content-Type: application/json' --data-binary @- \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin)["token"])') || die "signing in as $role failed"
done

# Something for the read routes to find: a unit's fixes and an alarm at the school (an incident
# no unit is offered: none is available), published as the devices over MQTT.
publish() { # USER PASSWORD TOPIC PAYLOAD
  local i
  for i in $(seq 1 50); do
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -u "$1" -P "$2" -i "$1" -q 1 -t "$3" -m "$4" 2>/dev/null && return
    sleep 0.2
  done
  die "cannot publish to $3 on kuzet's broker"
}
for ago in 90 60 30; do
  at=$(date -u -d "-$ago seconds" +%Y-%m-%dT%H:%M:%SZ)
  publish unit-1 "$UNIT_PW" kuzet/v1/units/unit-1/position \
    "{\"at\": \"$at\", \"lat\": 43.25$ago, \"lon\": 76.91, \"speed_mps\": 8.5, \"heading_deg\": 90}"
done
alarm=$("$py" -c 'import uuid; print(uuid.uuid4())')
publish btn-1 "$BTN_PW" kuzet/v1/buttons/btn-1/alarm \
  "{\"alarm_id\": \"$alarm\", \"action\": \"raise\", \"kind\": \"intruder\", \"at\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}"
# The record is written behind the live state: wait until the incident is in it.
for _ in $(seq 1 100); do
  n=$(curl -sf "$API/incidents" -H "Authorization: Bearer ${TOKEN[dispatcher]}" \
    | "$py" -c 'import json, sys; print(len(json.load(sys.stdin)))') || n=0
  [ "$n" -gt 0 ] && break
  sleep 0.2
done
[ "$n" -gt 0 ] || die "the alarm's incident did not reach the record"

# run ROLE NAME ARGS...: one schemathesis run as ROLE; its JUnit report is $WORK/ROLE-NAME.xml.
run() {
  local role=$1 name=$2
  shift 2
  # From the work folder: schemathesis keeps a cache (.schemathesis/) where it runs.
  (cd "$WORK" && "$ROOT/$VENV/bin/schemathesis" run "$API/openapi.json" \
    --header "Authorization: Bearer ${TOKEN[$role]}" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 \
    --generation-database none --no-color \
    --report junit --report-junit-path "$WORK/$role-$name.xml" \
    --exclude-path /api/v1/live "$@" >"$WORK/$role-$name.log" 2>&1)
}

# junit_counts FILE...: "passed failed" over the test cases (operations) of the reports.
junit_counts() {
  "$py" - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
passed = failed = 0
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
print(passed, failed)
PY
}

rc=0
start=$SECONDS
for role in "${ROLES[@]}"; do
  # Signing out ends the token the other operations use: last, in a run of its own.
  run "$role" main --exclude-operation-id sign_out || true
  run "$role" sign-out --include-operation-id sign_out || true
  reports=("$WORK/$role-main.xml" "$WORK/$role-sign-out.xml")
  for r in "${reports[@]}"; do
    [ -s "$r" ] || die "schemathesis wrote no report for $role ($r); see ${r%.xml}.log"
  done
  read -r passed failed < <(junit_counts "${reports[@]}")
  cases=$(grep -h -o '[0-9]* generated' "$WORK/$role-main.log" "$WORK/$role-sign-out.log" | awk '{ n += $1 } END { print n + 0 }')
  log "$role: $cases test cases"
  echo "openapi $role: $passed passed, $failed failed"
  if [ "$failed" -ne 0 ]; then
    rc=1
    log "$role: failures in $WORK/$role-main.log and $WORK/$role-sign-out.log"
  fi
done
log "schemathesis took $((SECONDS - start)) s for ${#ROLES[@]} roles ($MAX_EXAMPLES examples per operation and phase)"
exit "$rc"
