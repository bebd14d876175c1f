-- Subjects: an opaque id and a data key wrapped under a key-encryption key.
-- Shredding clears the wrapped key; nothing of the subject opens afterwards.
CREATE TABLE subjects (
    id                   TEXT PRIMARY KEY,
    created_at_us        INTEGER NOT NULL,
    kek_version          INTEGER,
    wrapped_key          BLOB,
    shredded_at_us       INTEGER,
    restricted_at_us     INTEGER,
    account_closed_at_us INTEGER
);

-- Keyed blind indexes of identifiers (email, phone, external id): never the identifier itself.
CREATE TABLE subject_identifiers (
    kind       TEXT  NOT NULL,
    blind      BLOB NOT NULL,
    subject_id TEXT  NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (kind, blind)
);
CREATE INDEX subject_identifiers_subject ON subject_identifiers (subject_id);

-- Field values, sealed with the subject's data key and bound to subject, field and category.
CREATE TABLE field_values (
    subject_id      TEXT  NOT NULL REFERENCES subjects (id),
    field           TEXT  NOT NULL,
    category        TEXT  NOT NULL,
    point           TEXT  NOT NULL,
    sealed          BLOB NOT NULL,
    collected_at_us INTEGER  NOT NULL,
    PRIMARY KEY (subject_id, field)
);

-- The consent ledger: every answer, in order; the latest per purpose counts.
CREATE TABLE consents (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    purpose    TEXT NOT NULL,
    given      INTEGER NOT NULL,
    point      TEXT NOT NULL,
    at_us      INTEGER NOT NULL
);
CREATE INDEX consents_subject ON consents (subject_id, purpose, at_us);

-- Objections (GDPR Art. 21), one row per subject and purpose.
CREATE TABLE objections (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    purpose    TEXT NOT NULL,
    at_us      INTEGER NOT NULL,
    PRIMARY KEY (subject_id, purpose)
);

-- API keys: only a hash of the token is kept.
CREATE TABLE api_keys (
    id            TEXT  PRIMARY KEY,
    name          TEXT  NOT NULL UNIQUE,
    token_hash    BLOB NOT NULL UNIQUE,
    purposes      TEXT  NOT NULL,
    points        TEXT  NOT NULL,
    created_at_us INTEGER  NOT NULL,
    revoked_at_us INTEGER
);
