-- kuzet: cameras' streams, the watchlist, sightings, negative examples and camera integrity.
--
-- No image or embedding of a face that did not match the watchlist is ever written here:
-- sightings exist only for matches above the review threshold.

ALTER TABLE devices ADD COLUMN IF NOT EXISTS stream_uri text;

-- ---------------------------------------------------------------------------------------------
-- The watchlist. Every entry names the legal basis (or case reference) it is held under, a
-- danger level and an expiry; an expired entry no longer matches. embedding: the SFace
-- embedding (128 floats, unit length) averaged over the enrolment photos.
CREATE TABLE IF NOT EXISTS watchlist (
    id          text PRIMARY KEY CONSTRAINT watchlist_id_format CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name        text NOT NULL,
    legal_basis text NOT NULL CONSTRAINT watchlist_legal_basis_given CHECK (length(btrim(legal_basis)) > 0),
    case_ref    text,
    danger      text NOT NULL CONSTRAINT watchlist_danger_check CHECK (danger IN ('low', 'medium', 'high')),
    expires_at  timestamptz NOT NULL,
    embedding   real[] NOT NULL CONSTRAINT watchlist_embedding_dim CHECK (cardinality(embedding) = 128),
    photos      integer NOT NULL,
    -- The aligned face of the first enrolment photo (JPEG), shown beside a match.
    face_jpeg   bytea,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    enrolled_by text NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- Sightings: a watchlisted person matched by a camera. One row per decision taken on it
-- (review, then confirmed or rejected; incident; update). Evidence files (face.jpg,
-- frame.jpg) live under the evidence folder, in a folder named by the sighting id.
CREATE TABLE IF NOT EXISTS sightings (
    id          uuid NOT NULL,
    decision    text NOT NULL CONSTRAINT sightings_decision_check
                CHECK (decision IN ('incident', 'update', 'review', 'confirmed', 'rejected')),
    person_id   text NOT NULL,
    camera_id   text NOT NULL,
    at          timestamptz NOT NULL,
    score       real NOT NULL,
    location    geography(Point, 4326) NOT NULL,
    evidence    boolean NOT NULL,
    incident_id uuid,
    review_id   uuid,
    -- The matched face's embedding, kept only while a review waits (so that a rejection after
    -- a restart can still leave its negative example); a match, never a passer-by.
    embedding   real[],
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, decision)
);
CREATE INDEX IF NOT EXISTS sightings_person_at ON sightings (person_id, at);
CREATE INDEX IF NOT EXISTS sightings_incident ON sightings (incident_id) WHERE incident_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS sightings_review ON sightings (review_id) WHERE review_id IS NOT NULL;

-- Faces a dispatcher rejected as a person on a camera: a later face that resembles one of
-- them more than the person is not a match there.
CREATE TABLE IF NOT EXISTS watchlist_negatives (
    id         bigserial PRIMARY KEY,
    person_id  text NOT NULL REFERENCES watchlist (id) ON DELETE CASCADE,
    camera_id  text NOT NULL,
    embedding  real[] NOT NULL CONSTRAINT watchlist_negatives_dim CHECK (cardinality(embedding) = 128),
    review_id  uuid,
    added_by   text NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS watchlist_negatives_person ON watchlist_negatives (person_id);

-- ---------------------------------------------------------------------------------------------
-- Camera integrity: offline, frozen, covered, and back to ok.
CREATE TABLE IF NOT EXISTS camera_alerts (
    camera_id text NOT NULL,
    at        timestamptz NOT NULL,
    state     text NOT NULL,
    detail    text,
    audience  text NOT NULL CONSTRAINT camera_alerts_audience_check CHECK (audience IN ('dispatch', 'oversight')),
    custodial boolean NOT NULL,
    PRIMARY KEY (camera_id, at, state)
);
