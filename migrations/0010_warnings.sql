-- kuzet: area warnings a dispatcher issued, as the CAP 1.2 messages that went out. One row per
-- message (its Alert, each Update, its Cancel); warning_id ties a warning's messages together.
-- The message as published is kept as it went out (xml); the columns are for finding it.
CREATE TABLE IF NOT EXISTS warnings (
    -- Issue order: CAP times are whole seconds, so two messages may share one.
    seq        bigserial PRIMARY KEY,
    identifier text NOT NULL UNIQUE,
    warning_id uuid NOT NULL,
    msg_type   text NOT NULL CONSTRAINT warnings_msg_type_check CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    sent       timestamptz NOT NULL,
    expires    timestamptz NOT NULL,
    headline   text NOT NULL,
    -- What the message says, as the API reads it back (area, texts, severity...).
    body       jsonb NOT NULL,
    xml        text NOT NULL,
    issued_by  text NOT NULL
);
CREATE INDEX IF NOT EXISTS warnings_warning ON warnings (warning_id, seq);
CREATE INDEX IF NOT EXISTS warnings_sent ON warnings (sent);
