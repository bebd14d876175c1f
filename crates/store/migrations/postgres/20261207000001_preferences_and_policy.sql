-- One-time codes (the preference center, and rights requests after it): the only way
-- charter proves who someone is. A row is written for every address asked about, known
-- or not, so that both get the same answer in the same time and share the rate limits;
-- an unknown address's row names no subject and never verifies. The code itself is not
-- kept: only its MAC under the key file, so the database alone cannot test guesses.
CREATE TABLE one_time_codes (
    id            TEXT   PRIMARY KEY,
    purpose       TEXT   NOT NULL,
    subject_id    TEXT   REFERENCES subjects (id),
    address_blind TEXT   NOT NULL,
    client        TEXT,
    code_mac      TEXT   NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    used_at_us    BIGINT
);
CREATE INDEX one_time_codes_address ON one_time_codes (address_blind, created_at_us);
CREATE INDEX one_time_codes_client ON one_time_codes (client, created_at_us);
CREATE INDEX one_time_codes_created ON one_time_codes (created_at_us);

-- Rights requests (GDPR and CCPA) and their timelines. A request names a subject only
-- when charter knows the person; an unknown person's request is kept just like a known
-- one (so nobody can tell them apart) and is never fulfilled. Details that hold personal
-- data (new values for a correction, an agent's authorisation) are sealed under the
-- subject's key in `sealed_details`; `details` holds purposes and names only.
CREATE TABLE requests (
    id                  TEXT   PRIMARY KEY,
    subject_id          TEXT   REFERENCES subjects (id),
    type                TEXT   NOT NULL,
    jurisdiction        TEXT   NOT NULL DEFAULT 'gdpr',
    status              TEXT   NOT NULL,
    source              TEXT   NOT NULL,
    details             TEXT   NOT NULL,
    sealed_details      BYTEA,
    contact_kind        TEXT,
    contact_blind       TEXT,
    challenge_id        TEXT,
    agent               BIGINT NOT NULL DEFAULT 0,
    duplicate_of        TEXT,
    reason              TEXT,
    received_at_us      BIGINT NOT NULL,
    verified_at_us      BIGINT,
    due_at_us           BIGINT,
    extended_due_at_us  BIGINT,
    extension_reason    TEXT,
    completed_at_us     BIGINT,
    lease_until_us      BIGINT,
    attempts            BIGINT NOT NULL DEFAULT 0,
    reminded_at_us      BIGINT,
    downloads_left      BIGINT,
    download_until_us   BIGINT
);
CREATE INDEX requests_subject ON requests (subject_id, received_at_us);
CREATE INDEX requests_open ON requests (status, due_at_us);
CREATE INDEX requests_contact ON requests (contact_blind, type, received_at_us);
CREATE INDEX requests_challenge ON requests (challenge_id);

-- What happened to each request, in order (every step is in the audit chain too).
CREATE TABLE request_events (
    request_id  TEXT   NOT NULL REFERENCES requests (id),
    at_us       BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    note        TEXT
);
CREATE INDEX request_events_request ON request_events (request_id, at_us);

-- Processors told of an erasure: by their signed webhook (the delivery job's id is what
-- their callback names) or by the team by hand (`manual`), each until it confirms.
CREATE TABLE request_processors (
    request_id      TEXT   NOT NULL REFERENCES requests (id),
    recipient       TEXT   NOT NULL,
    channel         TEXT   NOT NULL,
    delivery_id     TEXT,
    status          TEXT   NOT NULL,
    due_at_us       BIGINT NOT NULL,
    updated_at_us   BIGINT NOT NULL,
    escalated_at_us BIGINT,
    PRIMARY KEY (request_id, recipient)
);
CREATE INDEX request_processors_delivery ON request_processors (delivery_id);

-- Signed certificates of erasure: what was erased, what was kept and why, which
-- processors confirmed. They name the request and categories, never the person.
CREATE TABLE certificates (
    id          TEXT   PRIMARY KEY,
    request_id  TEXT   NOT NULL REFERENCES requests (id),
    body        TEXT   NOT NULL,
    signature   TEXT   NOT NULL,
    issued_at_us BIGINT NOT NULL
);

-- The privacy team's console accounts. An account is found by its email's blind index
-- (the address itself is not kept); its password only as an argon2id hash; its second
-- factor's secret is derived from the key file and `totp_salt`, never stored. A new
-- account holds the MAC of its one-time setup link until it is set up.
CREATE TABLE admins (
    id              TEXT   PRIMARY KEY,
    email_blind     TEXT   NOT NULL UNIQUE,
    role            TEXT   NOT NULL CHECK (role IN ('privacy', 'auditor')),
    password_hash   TEXT,
    totp_salt       TEXT   NOT NULL,
    setup_mac       TEXT,
    setup_until_us  BIGINT,
    created_at_us   BIGINT NOT NULL,
    disabled_at_us  BIGINT
);

-- Console sessions, by the MAC of their cookie's token.
CREATE TABLE admin_sessions (
    token_mac      TEXT   PRIMARY KEY,
    admin_id       TEXT   NOT NULL REFERENCES admins (id),
    expires_at_us  BIGINT NOT NULL
);

-- Published policies, in order: the last is the one in force. The text is the policy
-- file as published (it holds no personal data); `changes` lists the material changes
-- in plain words; `notified_at_us` is set once every subject has been queued a notice.
CREATE TABLE policy_versions (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version         TEXT   NOT NULL,
    sha256          TEXT   NOT NULL,
    last_updated    TEXT   NOT NULL,
    text            TEXT   NOT NULL,
    material        BIGINT NOT NULL,
    changes         TEXT   NOT NULL,
    published_at_us BIGINT NOT NULL,
    notified_at_us  BIGINT
);

-- The ledger gains the sources `policy_change` (a consent that lapsed because the purpose
-- it was given for grew in a material change of the policy) and `request` (an answer a
-- rights request carried).
ALTER TABLE consent_events DROP CONSTRAINT consent_events_source_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_source_check CHECK (source IN
    ('banner', 'preference_center', 'collection', 'api', 'gpc', 'unsubscribe', 'admin', 'policy_change', 'request'));
CREATE INDEX consent_events_purpose ON consent_events (purpose, seq);
