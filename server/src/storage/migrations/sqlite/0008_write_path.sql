-- The write path: what compaction decides from is stored with the document
-- (changes and bytes since its snapshot), so every node decides alike; actor
-- bindings say which actors are the server's own (reserved: no client may
-- write with them).
ALTER TABLE documents ADD COLUMN pending_changes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN pending_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE documents SET
    pending_changes = (SELECT COUNT(*) FROM changes c WHERE c.doc_id = documents.doc_id),
    pending_bytes = (SELECT COALESCE(SUM(length(c.bytes)), 0) FROM changes c WHERE c.doc_id = documents.doc_id);
ALTER TABLE actor_bindings ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;
