-- One-time codes (the preference center, and rights requests after it): the only way
-- charter proves who someone is. A row is written for every address asked about, known
-- or not, so that both get the same answer in the same time and share the rate limits;
-- an unknown address's row names no subject and never verifies. The code itself is not
-- kept: only its MAC under the key file, so the database alone cannot test guesses.
CREATE TABLE one_time_codes (
    id            TEXT    PRIMARY KEY,
    purpose       TEXT    NOT NULL,
    subject_id    TEXT    REFERENCES subjects (id),
    address_blind TEXT    NOT NULL,
    client        TEXT,
    code_mac      TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    used_at_us    INTEGER
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
    sealed_details      BLOB,
    contact_kind        TEXT,
    contact_blind       TEXT,
    challenge_id        TEXT,
    agent               INTEGER NOT NULL DEFAULT 0,
    duplicate_of        TEXT,
    reason              TEXT,
    received_at_us      INTEGER NOT NULL,
    verified_at_us      INTEGER,
    due_at_us           INTEGER,
    extended_due_at_us  INTEGER,
    extension_reason    TEXT,
    completed_at_us     INTEGER,
    lease_until_us      INTEGER,
    attempts            INTEGER NOT NULL DEFAULT 0,
    reminded_at_us      INTEGER,
    downloads_left      INTEGER,
    download_until_us   INTEGER
);
CREATE INDEX requests_subject ON requests (subject_id, received_at_us);
CREATE INDEX requests_open ON requests (status, due_at_us);
CREATE INDEX requests_contact ON requests (contact_blind, type, received_at_us);
CREATE INDEX requests_challenge ON requests (challenge_id);

-- What happened to each request, in order (every step is in the audit chain too).
CREATE TABLE request_events (
    request_id  TEXT   NOT NULL REFERENCES requests (id),
    at_us       INTEGER NOT NULL,
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
    due_at_us       INTEGER NOT NULL,
    updated_at_us   INTEGER NOT NULL,
    escalated_at_us INTEGER,
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
    issued_at_us INTEGER NOT NULL
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
    setup_until_us  INTEGER,
    created_at_us   INTEGER NOT NULL,
    disabled_at_us  INTEGER
);

-- Console sessions, by the MAC of their cookie's token.
CREATE TABLE admin_sessions (
    token_mac      TEXT   PRIMARY KEY,
    admin_id       TEXT   NOT NULL REFERENCES admins (id),
    expires_at_us  INTEGER NOT NULL
);

-- Published policies, in order: the last is the one in force. The text is the policy
-- file as published (it holds no personal data); `changes` lists the material changes
-- in plain words; `notified_at_us` is set once every subject has been queued a notice.
CREATE TABLE policy_versions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    version         TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    last_updated    TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    material        INTEGER NOT NULL,
    changes         TEXT    NOT NULL,
    published_at_us INTEGER NOT NULL,
    notified_at_us  INTEGER
);

-- The ledger gains the sources `policy_change` (a consent that lapsed because the purpose
-- it was given for grew in a material change of the policy) and `request` (an answer a
-- rights request carried). SQLite cannot alter a check,
-- so the table is rebuilt with its rows and order.
CREATE TABLE consent_events_next (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id         TEXT REFERENCES subjects (id),
    visitor_id         TEXT,
    purpose            TEXT NOT NULL,
    given              INTEGER NOT NULL,
    at_us              INTEGER NOT NULL,
    source             TEXT NOT NULL CHECK (source IN
                           ('banner', 'preference_center', 'collection', 'api', 'gpc', 'unsubscribe', 'admin',
                            'policy_change', 'request')),
    point              TEXT,
    policy_version     TEXT,
    notice_hash        TEXT,
    ip_prefix          TEXT,
    agent              TEXT,
    conflicts_with_gpc INTEGER NOT NULL DEFAULT 0,
    CHECK (subject_id IS NOT NULL OR visitor_id IS NOT NULL)
);
INSERT INTO consent_events_next SELECT * FROM consent_events ORDER BY seq;
DROP TABLE consent_events;
ALTER TABLE consent_events_next RENAME TO consent_events;
CREATE INDEX consent_events_subject ON consent_events (subject_id, purpose, seq);
CREATE INDEX consent_events_visitor ON consent_events (visitor_id, seq);
CREATE INDEX consent_events_purpose ON consent_events (purpose, seq);
