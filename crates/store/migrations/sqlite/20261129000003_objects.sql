-- Uploaded objects: sealed in chunks with the subject's data key before they reach object storage.
CREATE TABLE objects (
    id              TEXT PRIMARY KEY,
    subject_id      TEXT NOT NULL REFERENCES subjects (id),
    point           TEXT NOT NULL,
    field           TEXT NOT NULL,
    category        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    location        TEXT NOT NULL,
    collected_at_us INTEGER NOT NULL
);
CREATE INDEX objects_subject ON objects (subject_id);
