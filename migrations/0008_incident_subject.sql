-- What an incident is about: a site (a school's alarm) or a person (a watchlist hit); later
-- sources add kinds (a vehicle), not columns. Rows written before are filled from site_id and
-- the snapshot, as the writer does for batches spooled before this migration.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS subject_kind text;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS subject_id text;
UPDATE incidents SET
    subject_kind = CASE WHEN jsonb_typeof(snapshot -> 'wanted') = 'object' THEN 'person'
                        WHEN site_id IS NOT NULL THEN 'site' END,
    subject_id = COALESCE(snapshot -> 'wanted' ->> 'person_id', site_id)
WHERE subject_kind IS NULL;
CREATE INDEX IF NOT EXISTS incidents_subject ON incidents (subject_kind, subject_id);
