-- kuzet: what this database serves, claimed by the first kuzet that starts on it: the demo
-- (whose users share a published password) or a deployment. `kuzet serve` refuses a demo
-- database and `kuzet demo` a deployment's, so no published password works outside the demo.
CREATE TABLE IF NOT EXISTS deployment (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    kind     text NOT NULL CHECK (kind IN ('demo', 'live')),
    since    timestamptz NOT NULL DEFAULT now()
);
