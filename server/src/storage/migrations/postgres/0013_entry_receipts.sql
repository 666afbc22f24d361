-- When the server received each entry it accepted (petition timeline events
-- and messages, room messages), by entry id: written with the changes that
-- carry the entries, never changed, kept when compaction folds the changes
-- away. A petition's clocks run on these receipts (sync-core `clocks`).
CREATE TABLE entry_receipts (
    doc_id       TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    entry_id     TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (doc_id, entry_id)
);
