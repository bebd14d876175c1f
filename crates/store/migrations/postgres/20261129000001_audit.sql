-- The audit chain: one row per event, each hashed onto its predecessor.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at_us     BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    subject   TEXT,
    purpose   TEXT,
    result    TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    prev_hash BYTEA  NOT NULL,
    hash      BYTEA  NOT NULL
);

-- Signed checkpoints: the hash of entry `seq`, signed with the data directory's key.
CREATE TABLE audit_checkpoint (
    seq       BIGINT PRIMARY KEY,
    hash      BYTEA  NOT NULL,
    at_us     BIGINT NOT NULL,
    key_id    TEXT   NOT NULL,
    signature BYTEA  NOT NULL
);
