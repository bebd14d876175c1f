-- Key-encryption key versions retired by `charter keys rotate`. A data key wrapped under
-- one of them could never be opened again, so no new subject may be stored with one
-- (a server still running with an old key file is refused instead of losing data).
CREATE TABLE retired_keks (
    version       BIGINT PRIMARY KEY,
    retired_at_us BIGINT NOT NULL
);
