-- Failed password checks per name a request gives (a blind index or a subject id, never
-- an identifier), shared by every server on the database: the failures counted since the
-- first of the current window.
CREATE TABLE sign_in_failures (
    name     TEXT   PRIMARY KEY,
    failures BIGINT NOT NULL,
    since_us BIGINT NOT NULL
);

-- Password checks under way, each until it ends or its lease runs out (a server that
-- stopped mid-check leaves one that expires).
CREATE TABLE sign_in_running (
    id       TEXT   PRIMARY KEY,
    name     TEXT   NOT NULL,
    until_us BIGINT NOT NULL
);
CREATE INDEX sign_in_running_name ON sign_in_running (name);
