-- The audit chain: one row per event, each hashed onto its predecessor.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at_us     INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT,
    purpose   TEXT,
    result    TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL,
    hash      BLOB    NOT NULL
);

-- Signed checkpoints: the hash of entry `seq`, signed with the data directory's key.
CREATE TABLE audit_checkpoint (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB    NOT NULL,
    at_us     INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL
);
