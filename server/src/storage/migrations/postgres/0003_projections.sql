-- Projections: rows derived from documents, written in the same transaction
-- as the changes they come from. Times are milliseconds since the Unix epoch.

-- One row per petition: its derived status, holder and deadlines.
CREATE TABLE petitions (
    doc_id            TEXT PRIMARY KEY NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    title             TEXT NOT NULL,
    channel           TEXT NOT NULL,
    category          TEXT NOT NULL,
    status            TEXT NOT NULL,
    lead_unit         TEXT,
    submitter         TEXT NOT NULL,
    location_unit     TEXT NOT NULL,
    submitted_at      BIGINT,
    signed_at         BIGINT,
    contacted_at      BIGINT,
    replied_at        BIGINT,
    closed_at         BIGINT,
    next_due          BIGINT,
    rating            BIGINT,
    supervised        BIGINT NOT NULL,
    awaiting_handler  BIGINT NOT NULL,
    updated_seq       BIGINT NOT NULL,
    summary           TEXT NOT NULL
);
CREATE INDEX petitions_status ON petitions(status);
CREATE INDEX petitions_lead ON petitions(lead_unit);
CREATE INDEX petitions_next_due ON petitions(next_due);
CREATE INDEX petitions_submitted ON petitions(submitted_at);

-- Who may see a document: one row per unit (jurisdiction), user, household,
-- room or audience unit named by its visibility.
CREATE TABLE doc_access (
    doc_id   TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    PRIMARY KEY (doc_id, kind, subject)
);
CREATE INDEX doc_access_subject ON doc_access(kind, subject);

CREATE TABLE rooms (
    doc_id        TEXT PRIMARY KEY NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    unit_id       TEXT NOT NULL,
    household_id  TEXT,
    updated_seq   BIGINT NOT NULL
);

-- Room messages as readers see them (redacted content removed).
CREATE TABLE room_messages (
    doc_id      TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    entry_id    TEXT NOT NULL,
    author      TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (doc_id, entry_id)
);
