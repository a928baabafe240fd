-- kuzet: the initial PostgreSQL 15 + PostGIS 3 schema, the system of record.
--
-- Points and areas are geography(..., 4326) (WGS 84 longitude/latitude): ST_Distance, ST_DWithin
-- and the KNN operator <-> then work in metres. Build a point from floats with
-- ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography; read it back with ST_Y(p::geometry) (lat)
-- and ST_X(p::geometry) (lon).
--
-- Device and site ids follow the MQTT contract: ^[a-z0-9][a-z0-9-]{0,63}$.
--
-- Written so that running the whole file again on the same database is a no-op (IF NOT EXISTS,
-- CREATE OR REPLACE): sqlx applies it once, in one transaction.

CREATE EXTENSION IF NOT EXISTS postgis;
-- gen_random_bytes, hmac, digest for tools and tests; the audit chain itself uses the built-in
-- sha256(bytea), which gives the same bytes as pgcrypto's digest(x, 'sha256').
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- ---------------------------------------------------------------------------------------------
-- Sites: schools (panic buttons), police stations and prisons (custodial cameras).
CREATE TABLE IF NOT EXISTS sites (
    id         text PRIMARY KEY CONSTRAINT sites_id_format CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name       text NOT NULL,
    kind       text NOT NULL CONSTRAINT sites_kind_check CHECK (kind IN ('school', 'police_station', 'prison')),
    location   geography(Point, 4326) NOT NULL,
    area       geography(Polygon, 4326),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sites_location_gist ON sites USING gist (location);

-- ---------------------------------------------------------------------------------------------
-- Devices: panic buttons, patrol units (officer tablets) and cameras. One id space for all
-- kinds. position: a camera's or button's fixed place, a unit's last known position.
CREATE TABLE IF NOT EXISTS devices (
    id         text PRIMARY KEY CONSTRAINT devices_id_format CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    kind       text NOT NULL CONSTRAINT devices_kind_check CHECK (kind IN ('button', 'unit', 'camera')),
    site_id    text REFERENCES sites (id),
    room       text,
    callsign   text,
    position   geography(Point, 4326),
    -- A camera that watches a police station or prison: its alerts go to oversight.
    custodial  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_position_gist ON devices USING gist (position);
CREATE INDEX IF NOT EXISTS devices_site_id ON devices (site_id) WHERE site_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Incidents: one row per incident, its current state and a JSON snapshot of it.
CREATE TABLE IF NOT EXISTS incidents (
    id        uuid PRIMARY KEY,
    kind      text NOT NULL,
    -- 1 is the most urgent (the Rust side holds it in a u8).
    priority  smallint NOT NULL CONSTRAINT incidents_priority_range CHECK (priority BETWEEN 0 AND 255),
    state     text NOT NULL,
    site_id   text REFERENCES sites (id),
    location  geography(Point, 4326) NOT NULL,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz,
    -- Why it was escalated to the console as uncovered (e.g. no_units_left), if it was.
    escalated text,
    snapshot  jsonb
);
CREATE INDEX IF NOT EXISTS incidents_opened_at ON incidents (opened_at);
CREATE INDEX IF NOT EXISTS incidents_state ON incidents (state);
CREATE INDEX IF NOT EXISTS incidents_location_gist ON incidents USING gist (location);

-- ---------------------------------------------------------------------------------------------
-- Alarms as the buttons sent them. alarm_id (chosen by the button) is the idempotency key:
-- INSERT ... ON CONFLICT (alarm_id) DO NOTHING drops a redelivered alarm. incident_id has no
-- foreign key so that the write-behind writer need not order alarm and incident writes.
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id    uuid PRIMARY KEY,
    button_id   text NOT NULL REFERENCES devices (id),
    action      text NOT NULL CONSTRAINT alarms_action_check CHECK (action IN ('raise', 'cancel')),
    kind        text,
    device_at   timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    incident_id uuid
);
CREATE INDEX IF NOT EXISTS alarms_button_received ON alarms (button_id, received_at);
CREATE INDEX IF NOT EXISTS alarms_incident_id ON alarms (incident_id) WHERE incident_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- An incident's timeline: offers, replies, progress, escalations. t_us: microseconds since the
-- incident opened, on kuzet's monotonic clock; at: wall-clock time.
CREATE TABLE IF NOT EXISTS incident_events (
    id          bigserial PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incidents (id),
    at          timestamptz NOT NULL,
    t_us        bigint NOT NULL,
    event       text NOT NULL,
    unit_id     text,
    button_id   text,
    detail      text
);
CREATE INDEX IF NOT EXISTS incident_events_incident ON incident_events (incident_id, id);

-- ---------------------------------------------------------------------------------------------
-- The AVL track: every position a unit reported. Append-only and large, so no foreign key
-- (one check per row at thousands of rows a second) and a BRIN index for time ranges: rows
-- arrive in roughly `at` order.
CREATE TABLE IF NOT EXISTS unit_positions (
    unit_id     text NOT NULL,
    at          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    position    geography(Point, 4326) NOT NULL,
    speed_mps   real,
    heading_deg real
);
CREATE INDEX IF NOT EXISTS unit_positions_unit_at ON unit_positions (unit_id, at);
CREATE INDEX IF NOT EXISTS unit_positions_at_brin ON unit_positions USING brin (at);

-- ---------------------------------------------------------------------------------------------
-- The audit log: append-only and hash-chained.
--
-- Every row's hash covers its content and the previous row's hash:
--
--   hash = sha256(prev_hash || convert_to(canonical, 'UTF8'))
--
--   canonical = seq::text
--            || '|' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
--            || '|' || actor
--            || '|' || action
--            || '|' || coalesce(subject, '')
--            || '|' || details::text
--
-- e.g. 1|2026-11-25T21:40:01.123456Z|dispatcher:aigerim|incident.assign|incident-0|{"n": 0, "unit": "unit-0001"}
--
-- prev_hash is the previous row's hash, 32 zero bytes for seq 1. seq runs 1, 2, 3, ... with no
-- gaps. details::text is PostgreSQL's normalised rendering of the jsonb value (keys sorted by
-- length then bytes, ", " and ": " separators): a verifier must read `details::text` from the
-- database, not re-serialise the JSON itself. sha256() is PostgreSQL's built-in one (same bytes
-- as pgcrypto's digest(x, 'sha256')). actor, action and subject may not contain '|', so the
-- canonical text splits back into its fields in exactly one way.
--
-- The BEFORE INSERT trigger assigns seq, at (the database clock, clock_timestamp()),
-- prev_hash and hash; whatever the INSERT gave for them is replaced. It takes them from
-- audit_head, the single row holding the last seq and hash, locked (FOR UPDATE) and updated in
-- the inserting transaction: appends are serialised, a rolled-back append leaves no gap, and a
-- forged or removed last row breaks the chain at the next append. In REPEATABLE READ or
-- SERIALIZABLE transactions concurrent appends fail with a serialization error (retry).
--
-- UPDATE, DELETE and TRUNCATE are refused by triggers. They are ordinary triggers: a superuser
-- can still switch them off (SET session_replication_role = replica, or ALTER TABLE ... DISABLE
-- TRIGGER), which is what the hash chain is for: scripts/audit-verify.sql (and
-- `kuzet audit verify`) recompute it and name the first row that does not fit.
CREATE TABLE IF NOT EXISTS audit_log (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text NOT NULL CONSTRAINT audit_log_actor_check CHECK (actor <> '' AND strpos(actor, '|') = 0),
    action    text NOT NULL CONSTRAINT audit_log_action_check CHECK (action <> '' AND strpos(action, '|') = 0),
    subject   text CONSTRAINT audit_log_subject_check CHECK (strpos(subject, '|') = 0),
    details   jsonb NOT NULL DEFAULT '{}',
    prev_hash bytea NOT NULL CONSTRAINT audit_log_prev_hash_length CHECK (length(prev_hash) = 32),
    hash      bytea NOT NULL CONSTRAINT audit_log_hash_length CHECK (length(hash) = 32)
);

-- The chain's head: the last seq and hash appended (0 and 32 zero bytes before the first row).
CREATE TABLE IF NOT EXISTS audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT audit_head_singleton CHECK (singleton),
    seq       bigint NOT NULL,
    hash      bytea NOT NULL
);
INSERT INTO audit_head (singleton, seq, hash)
SELECT true, 0, decode(repeat('00', 32), 'hex')
WHERE NOT EXISTS (SELECT 1 FROM audit_head);

-- The canonical text a row's hash covers (see above). Verifiers should not rely on this
-- function (whoever can forge rows can replace it): scripts/audit-verify.sql spells it out.
CREATE OR REPLACE FUNCTION audit_canonical(seq bigint, at timestamptz, actor text, action text, subject text, details jsonb)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT $1::text
        || '|' || to_char($2 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || '|' || $3
        || '|' || $4
        || '|' || coalesce($5, '')
        || '|' || $6::text
$$;

CREATE OR REPLACE FUNCTION audit_log_chain()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    last_seq  bigint;
    last_hash bytea;
BEGIN
    -- Checked here, before the hash is computed (a NULL would only surface as a NULL hash).
    IF NEW.actor IS NULL OR NEW.action IS NULL THEN
        RAISE EXCEPTION 'audit_log: actor and action are required' USING ERRCODE = 'not_null_violation';
    END IF;
    SELECT h.seq, h.hash INTO last_seq, last_hash FROM audit_head h WHERE h.singleton FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit_head has no row: the audit chain cannot continue';
    END IF;
    NEW.seq := last_seq + 1;
    -- Taken after the lock, so `at` does not go backwards along seq (unless the clock does).
    NEW.at := clock_timestamp();
    NEW.details := coalesce(NEW.details, '{}'::jsonb);
    NEW.prev_hash := last_hash;
    NEW.hash := sha256(NEW.prev_hash
        || convert_to(audit_canonical(NEW.seq, NEW.at, NEW.actor, NEW.action, NEW.subject, NEW.details), 'UTF8'));
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE singleton;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION audit_log_refuse()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING HINT = 'Add a new entry with audit_append(actor, action, subject, details) instead.';
END
$$;

-- audit_head changes only inside audit_log's insert trigger.
CREATE OR REPLACE FUNCTION audit_head_refuse()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_head is maintained by the audit_log insert trigger: % refused', TG_OP;
END
$$;

CREATE OR REPLACE TRIGGER audit_log_chain
    BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
CREATE OR REPLACE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
CREATE OR REPLACE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();
CREATE OR REPLACE TRIGGER audit_head_guard
    BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_refuse();
CREATE OR REPLACE TRIGGER audit_head_no_truncate
    BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_head_refuse();

-- Appends one entry and returns its seq.
CREATE OR REPLACE FUNCTION audit_append(actor text, action text, subject text DEFAULT NULL, details jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE sql
AS $$
    INSERT INTO audit_log (actor, action, subject, details)
    VALUES ($1, $2, $3, coalesce($4, '{}'::jsonb))
    RETURNING seq
$$;

COMMENT ON TABLE audit_log IS
    'Append-only, hash-chained audit log: hash = sha256(prev_hash || convert_to(audit_canonical(seq, at, actor, action, subject, details), ''UTF8'')). See migrations/0001_initial.sql.';
COMMENT ON FUNCTION audit_canonical(bigint, timestamptz, text, text, text, jsonb) IS
    'seq::text || ''|'' || to_char(at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'') || ''|'' || actor || ''|'' || action || ''|'' || coalesce(subject, '''') || ''|'' || details::text';
