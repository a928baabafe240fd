#!/usr/bin/env bash
# Validates docker-compose.yml against the Compose specification bundled in check-jsonschema,
# then checks what the schema does not and `docker compose config` would: every named volume
# and secret a service uses is declared at the top level.
# Offline: no Docker engine and no network needed (there is no Docker engine on our machines).
set -euo pipefail
cd "$(dirname "$0")/.."

CJS=target/tools-venv/bin/check-jsonschema
[ -x "$CJS" ] || scripts/setup.sh --venv-only
"$CJS" --builtin-schema vendor.compose-spec docker-compose.yml
target/tools-venv/bin/python - docker-compose.yml <<'PY'
import sys
from ruamel.yaml import YAML

doc = YAML(typ="safe").load(open(sys.argv[1]))
volumes = set(doc.get("volumes") or {})
secrets = set(doc.get("secrets") or {})
bad = []
for name, svc in (doc.get("services") or {}).items():
    for v in svc.get("volumes") or []:
        src = v.get("source") if isinstance(v, dict) else v.split(":")[0]
        # Bind mounts are paths; anything else names a volume.
        if src and not src.startswith((".", "/", "~", "$")) and src not in volumes:
            bad.append(f"{name}: volume {src} is not declared under volumes:")
    for s in svc.get("secrets") or []:
        src = s.get("source") if isinstance(s, dict) else s
        if src not in secrets:
            bad.append(f"{name}: secret {src} is not declared under secrets:")
if bad:
    sys.exit("\n".join(bad))
print("ok -- volumes and secrets declared")
PY
