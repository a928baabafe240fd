-- kuzet: what the write-behind writer and the restore on start need.

-- A unit reports one fix per instant: (unit_id, at) identifies a row, so a batch written again
-- after an outage (from the spool) adds nothing twice.
DROP INDEX IF EXISTS unit_positions_unit_at;
CREATE UNIQUE INDEX IF NOT EXISTS unit_positions_unit_at_key ON unit_positions (unit_id, at);

-- A timeline entry's place in its incident's timeline (0, 1, 2, ...): written again, it is
-- the same row.
ALTER TABLE incident_events ADD COLUMN IF NOT EXISTS seq integer;
UPDATE incident_events e SET seq = n.seq
FROM (SELECT id, (row_number() OVER (PARTITION BY incident_id ORDER BY id) - 1)::integer AS seq
      FROM incident_events) n
WHERE e.id = n.id AND e.seq IS NULL;
ALTER TABLE incident_events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS incident_events_incident_seq ON incident_events (incident_id, seq);
DROP INDEX IF EXISTS incident_events_incident;

-- The dispatch state an open incident is restored from after a restart (units asked, offers
-- pending and when they expire, units assigned), and when the row last changed.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS dispatch jsonb;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS updated_at timestamptz;

-- Batches the writer committed. A batch written to the spool while the database looked
-- unreachable may have been committed after all; its id here makes the replay a no-op.
-- Rows older than a day are pruned by the writer.
CREATE TABLE IF NOT EXISTS writer_batches (
    id         uuid PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS writer_batches_written_at ON writer_batches (written_at);

-- A button's cancel names the raise it cancels (same alarm_id): both are kept.
ALTER TABLE alarms DROP CONSTRAINT IF EXISTS alarms_pkey;
ALTER TABLE alarms ADD PRIMARY KEY (alarm_id, action);
