-- Legal holds: while one is in force, retention deletes and anonymises nothing of its
-- subject, or of its category. Removing a hold keeps its row (removed_at_us set).
CREATE TABLE legal_holds (
    id            TEXT   PRIMARY KEY,
    subject_id    TEXT,
    category      TEXT,
    reason        TEXT   NOT NULL,
    created_at_us BIGINT NOT NULL,
    removed_at_us BIGINT,
    CHECK ((subject_id IS NULL) <> (category IS NULL))
);

-- What each retention sweep did, per category: deleted, anonymised, held (due but kept
-- by a hold), suppressed (anonymised but in a group smaller than k), shredded (whole
-- subjects). Written in the transaction that did it; the retention report reads it.
CREATE TABLE retention_outcomes (
    sweep_id TEXT   NOT NULL,
    category TEXT   NOT NULL,
    outcome  TEXT   NOT NULL CHECK (outcome IN ('deleted', 'anonymised', 'held', 'suppressed', 'shredded')),
    n        BIGINT NOT NULL,
    at_us    BIGINT NOT NULL
);
CREATE INDEX retention_outcomes_time ON retention_outcomes (at_us);

-- Records once anonymised: no subject, no record id, only generalised values. Pending
-- (kept = 0) until the k-anonymity check keeps them (kept = 1) or suppresses them.
CREATE TABLE anonymous_records (
    id            TEXT   PRIMARY KEY,
    point         TEXT   NOT NULL,
    day           TEXT   NOT NULL,
    grp           TEXT   NOT NULL,
    quasi         TEXT   NOT NULL,
    vals          TEXT   NOT NULL,
    kept          BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE INDEX anonymous_records_group ON anonymous_records (grp, kept);

-- A value generalised in place when its category's retention ended.
ALTER TABLE record_fields ADD COLUMN anonymised_at_us BIGINT;
ALTER TABLE field_values ADD COLUMN anonymised_at_us BIGINT;
CREATE INDEX record_fields_category ON record_fields (category);
CREATE INDEX field_values_category ON field_values (category);
CREATE INDEX objects_category ON objects (category);
