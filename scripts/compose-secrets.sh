#!/usr/bin/env bash
# Writes the secrets docker-compose.yml reads, once: a file that already exists is never
# overwritten (a new database password would lock kuzet out of a PostGIS volume made with the
# old one). Run it before the first `docker compose up`.
#
#   secrets/postgres_password  PostGIS's password for the kuzet role, the schema's owner (256 random bits)
#   secrets/database_owner_url postgres://kuzet:PASSWORD@postgis:5432/kuzet: kuzet migrates with it
#   secrets/app_password       the password of kuzet_app, the role kuzet serves as (256 random bits)
#   secrets/database_url       postgres://kuzet_app:PASSWORD@postgis:5432/kuzet, for kuzet
#   secrets/mqtt_password      kuzet's own account on the broker it runs (256 random bits)
#   secrets/registry.toml      the device registry: an empty one; put your devices in it and
#                              issue their passwords with `kuzet credentials issue` (docs/operations.md)
#
# Files are mode 0600 in a 0700 folder. Compose bind-mounts them with the host's owner and
# mode, and kuzet runs as uid 10001 in its image: run this as root (sudo) and the files kuzet
# reads are given to that uid; otherwise the script prints the chown to run.
set -euo pipefail
cd "$(dirname "$0")/.."

KUZET_UID=10001
DIR=secrets
umask 077
mkdir -p "$DIR"
chmod 700 "$DIR"

random_hex() {
    # 32 bytes: 256 bits. Hex needs no escaping inside a URL.
    if command -v openssl >/dev/null; then
        openssl rand -hex 32
    else
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
        echo
    fi
}

# Writes $2 to $DIR/$1 unless the file exists; the content goes through a temporary file so an
# interrupted run leaves no half-written secret.
write_once() {
    local path="$DIR/$1"
    if [ -e "$path" ]; then
        echo "kept    $path (exists)"
        return
    fi
    local tmp
    tmp=$(mktemp "$DIR/.tmp.XXXXXX")
    printf '%s\n' "$2" >"$tmp"
    chmod 600 "$tmp"
    mv -n "$tmp" "$path"
    rm -f "$tmp"
    echo "wrote   $path"
}

if [ -e "$DIR/database_owner_url" ] && [ ! -e "$DIR/postgres_password" ]; then
    echo "$DIR/database_owner_url exists without $DIR/postgres_password: restore it, or remove both" >&2
    echo "(and the pgdata volume, whose kuzet role has the old password)" >&2
    exit 1
elif [ -e "$DIR/postgres_password" ]; then
    # The URL from the existing password, so both agree.
    pw=$(tr -d '\n' <"$DIR/postgres_password")
else
    pw=$(random_hex)
fi
write_once postgres_password "$pw"
write_once database_owner_url "postgres://kuzet:${pw}@postgis:5432/kuzet"
unset pw
if [ -e "$DIR/database_url" ] && [ ! -e "$DIR/app_password" ]; then
    # A set-up from before kuzet_app: kuzet goes on serving as the owner (it warns at start).
    # To move: make the role with scripts/compose-initdb.sh's SQL, write app_password and a
    # database_url naming kuzet_app (docs/security.md).
    echo "kept    $DIR/database_url (serves as the owner: see docs/security.md to move to kuzet_app)"
    write_once app_password "$(random_hex)"
else
    app=$( [ -e "$DIR/app_password" ] && tr -d '\n' <"$DIR/app_password" || random_hex )
    write_once app_password "$app"
    write_once database_url "postgres://kuzet_app:${app}@postgis:5432/kuzet"
    unset app
fi
write_once mqtt_password "$(random_hex)"
write_once registry.toml "# kuzet's device registry for docker-compose (registry.file = /run/secrets/registry.toml).
# Format: docs/operations.md, \"Device registry\". Leave passwords out: issue each device its
# own with \`kuzet credentials issue --missing\` in the container (docs/security.md)."

# kuzet reads these as its image's user; PostGIS reads postgres_password as root at start.
kuzet_reads=("$DIR/database_url" "$DIR/database_owner_url" "$DIR/mqtt_password" "$DIR/registry.toml")
if [ "$(id -u)" = 0 ]; then
    chown "$KUZET_UID:$KUZET_UID" "${kuzet_reads[@]}"
    echo "owner   uid $KUZET_UID (kuzet in the image): ${kuzet_reads[*]}"
elif [ "$(stat -c %u "$DIR/database_url")" != "$KUZET_UID" ]; then
    echo "kuzet runs as uid $KUZET_UID in its container and cannot read files you own with mode 0600:"
    echo "  sudo chown $KUZET_UID:$KUZET_UID ${kuzet_reads[*]}"
fi
