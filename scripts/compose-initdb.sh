#!/bin/sh
# Run by the PostGIS image once, when its pgdata volume is first initialised
# (/docker-entrypoint-initdb.d): the role kuzet serves as. It owns nothing; kuzet, started with
# the owner's URL as database.owner_url, applies the migrations as the owner and grants this
# role what it needs, which on the audit log is INSERT and SELECT only (docs/security.md).
set -eu
pw=$(tr -d '\n' </run/secrets/app_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$pw" <<'SQL'
CREATE ROLE kuzet_app LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE kuzet TO kuzet_app;
SQL
