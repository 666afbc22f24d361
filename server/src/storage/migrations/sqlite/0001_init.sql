-- Lianxin schema, SQLite flavour. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE units (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    parent_id   TEXT REFERENCES units(id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX units_parent ON units(parent_id);

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    login_name     TEXT UNIQUE,
    display_name   TEXT NOT NULL,
    phone          TEXT UNIQUE,
    password_hash  TEXT,
    kind           TEXT NOT NULL,
    household_id   TEXT,
    disabled_at    INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE memberships (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    unit_id  TEXT NOT NULL REFERENCES units(id),
    role     TEXT NOT NULL,
    PRIMARY KEY (user_id, unit_id, role)
);
CREATE INDEX memberships_unit ON memberships(unit_id);

CREATE TABLE actor_bindings (
    actor     TEXT PRIMARY KEY NOT NULL,
    user_id   TEXT NOT NULL,
    bound_at  INTEGER NOT NULL
);
CREATE INDEX actor_bindings_user ON actor_bindings(user_id);

CREATE TABLE documents (
    doc_id           TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    snapshot         BLOB,
    snapshot_heads   TEXT NOT NULL DEFAULT '',
    snapshot_seq     INTEGER NOT NULL DEFAULT 0,
    last_change_seq  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX documents_last_change ON documents(last_change_seq);
CREATE INDEX documents_snapshot_seq ON documents(snapshot_seq);

-- AUTOINCREMENT: a seq is never reused, even after compaction deletes the
-- highest rows, so cursors stay monotonic.
CREATE TABLE changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id       TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    actor        TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE INDEX changes_doc_seq ON changes(doc_id, seq);

CREATE TABLE sessions (
    sid         TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    origin      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    sid         TEXT NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_sid ON refresh_tokens(sid);

CREATE TABLE revocations (
    jti         TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL,
    revoked_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE otp_codes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    phone        TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    consumed_at  INTEGER
);
CREATE INDEX otp_codes_phone ON otp_codes(phone, created_at);
