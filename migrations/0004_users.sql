-- kuzet: the people who use the console, the oversight view and the tablets, and their
-- sessions. Passwords are argon2id PHC strings; sessions are kept as the SHA-256 of their
-- token, so a copy of this table signs nobody in.

CREATE TABLE IF NOT EXISTS users (
    username      text PRIMARY KEY CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    role          text NOT NULL CONSTRAINT users_role_check
                  CHECK (role IN ('dispatcher', 'supervisor', 'oversight', 'officer')),
    -- The unit an officer signs in as; only officers have one.
    unit_id       text,
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    CONSTRAINT users_officer_unit CHECK ((role = 'officer') = (unit_id IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 bytea PRIMARY KEY,
    username     text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_username ON sessions (username);
