-- Durable jobs: messages to people (mail, text messages) and calls to processors
-- (webhooks), each sent by whichever worker claims it first. Nothing personal is in
-- clear: the message is sealed under a key of its own, wrapped under the subject's
-- data key (subject_id set: erasing the person makes it unreadable) or under the
-- key-encryption key (kek_version set: someone who is not a subject, or a message
-- sealed to outlive an erasure).
CREATE TABLE jobs (
    id              TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL UNIQUE,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead', 'void')),
    subject_id      TEXT,
    kek_version     BIGINT,
    wrapped_key     BYTEA   NOT NULL,
    sealed          BYTEA   NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    max_attempts    BIGINT  NOT NULL,
    next_at_us      BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until_us  BIGINT,
    last_error      TEXT,
    created_at_us   BIGINT  NOT NULL,
    finished_at_us  BIGINT
);
-- Due work is found by state and time; a subject's pending messages by subject.
CREATE INDEX jobs_due ON jobs (state, next_at_us);
CREATE INDEX jobs_subject ON jobs (subject_id) WHERE subject_id IS NOT NULL;

-- Each webhook recipient's signing secret, sealed under the key file.
CREATE TABLE webhook_secrets (
    recipient     TEXT   PRIMARY KEY,
    sealed        BYTEA  NOT NULL,
    created_at_us BIGINT NOT NULL
);
