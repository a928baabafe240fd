-- kuzet: each unit's status as its tablet last reported it (available, busy, off_duty), so a
-- restarted kuzet does not offer work to a unit that went off duty before the restart.
CREATE TABLE IF NOT EXISTS unit_status (
    unit_id    text PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('available', 'busy', 'off_duty')),
    at         timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
