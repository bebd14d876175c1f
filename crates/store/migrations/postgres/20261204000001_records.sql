-- Records: what each collection at a record point keeps (a support message, an order, a
-- job application), with its own opaque id and collection time. Its fields are sealed
-- with a data key of its own, wrapped under the subject's data key, so erasing a record
-- destroys its key alone.
CREATE TABLE records (
    id              TEXT  PRIMARY KEY,
    subject_id      TEXT  NOT NULL REFERENCES subjects (id),
    point           TEXT  NOT NULL,
    collected_at_us BIGINT NOT NULL,
    wrapped_key     BYTEA NOT NULL
);
-- Newest first, by subject, and by subject and point: the orders of a records page.
CREATE INDEX records_by_time ON records (subject_id, collected_at_us, id);
CREATE INDEX records_by_point ON records (subject_id, point, collected_at_us, id);

-- A record's fields, sealed with the record's key and bound to subject, record, field and category.
CREATE TABLE record_fields (
    record_id TEXT  NOT NULL REFERENCES records (id),
    field     TEXT  NOT NULL,
    category  TEXT  NOT NULL,
    sealed    BYTEA NOT NULL,
    PRIMARY KEY (record_id, field)
);

-- Each profile value gets a data key of its own, wrapped under the subject's key. NULL:
-- a value sealed with the subject's key itself by an earlier version; charter reseals
-- those when it starts.
ALTER TABLE field_values ADD COLUMN wrapped_key BYTEA;

-- An object belongs to the record it was collected with (NULL at a profile point), and
-- has a data key of its own, wrapped under the subject's key (NULL: sealed with the
-- subject's key itself, by an earlier version).
ALTER TABLE objects ADD COLUMN record_id TEXT REFERENCES records (id);
ALTER TABLE objects ADD COLUMN wrapped_key BYTEA;
CREATE INDEX objects_record ON objects (record_id);
