-- The consent ledger (P12, P15, P16, P22, P25): one row per answer, never updated or
-- deleted. The state of a person's consent is a fold over their rows in `seq` order:
-- the last answer per purpose wins. A row is a subject's, or an anonymous visitor's
-- (the cookie banner) until the visitor is collected or signs in and it joins the
-- subject's. The purpose `*sale_or_sharing` holds opt-outs of sale and sharing (GPC,
-- the do-not-sell page), which no policy purpose can be named.
--
-- Evidence is what the answer was given with, already coarse: the client's address
-- truncated to /24 (IPv4) or /48 (IPv6) and the browser and system family.
CREATE TABLE consent_events (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id         TEXT REFERENCES subjects (id),
    visitor_id         TEXT,
    purpose            TEXT NOT NULL,
    given              BIGINT NOT NULL,
    at_us              BIGINT NOT NULL,
    source             TEXT NOT NULL CHECK (source IN
                           ('banner', 'preference_center', 'collection', 'api', 'gpc', 'unsubscribe', 'admin')),
    point              TEXT,
    policy_version     TEXT,
    notice_hash        TEXT,
    ip_prefix          TEXT,
    agent              TEXT,
    conflicts_with_gpc BIGINT NOT NULL DEFAULT 0,
    CHECK (subject_id IS NOT NULL OR visitor_id IS NOT NULL)
);
CREATE INDEX consent_events_subject ON consent_events (subject_id, purpose, seq);
CREATE INDEX consent_events_visitor ON consent_events (visitor_id, seq);

-- The answers given at collection points so far become the ledger's first rows.
INSERT INTO consent_events (subject_id, purpose, given, at_us, source, point)
    SELECT subject_id, purpose, given, at_us, 'collection', point FROM consents ORDER BY at_us;
DROP TABLE consents;
