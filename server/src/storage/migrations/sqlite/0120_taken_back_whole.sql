-- A document whose every change the tier above refused (it refused the
-- change that created it) is taken out of every list at a station: its
-- access rows and projection rows go, so no list or report shows it (and
-- inboxes leave out items about it). What it leaves is kept here, so that
-- every replica that may hold it is still told, on its next exchange, that
-- it is refused whole:
-- when (`seq`, a change number of its own handed out at the take-back,
-- which the document's last_change_seq then names, so every cursor given
-- out before lies below it) and who could have held it (the access rows it
-- had, and a 'user' row for each person whose change it held).
CREATE TABLE taken_back_docs (
    doc_id    TEXT PRIMARY KEY NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    taken_at  INTEGER NOT NULL
);

CREATE TABLE taken_back_readers (
    doc_id   TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    PRIMARY KEY (doc_id, kind, subject)
);
CREATE INDEX taken_back_readers_subject ON taken_back_readers(subject);
