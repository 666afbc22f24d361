-- An inbox row is unique by (key, user_id) rather than (user_id, key): the
-- rows one notification adds for thousands of people then sit side by side
-- in the index instead of one in every user's stretch of it. With the user
-- first, an @all to 10,000 people touched every page of an index that grows
-- with the inbox: the insert took 13 ms into an empty inbox and 46 ms after
-- eleven such notices; key first, 11 ms and 24 ms (the remaining growth is
-- inbox_user_seq, which per-user reads need).
--
-- SQLite cannot change a table's constraint in place: the table is copied.
-- The AUTOINCREMENT counter is carried over, so no seq is ever handed out twice.
CREATE TABLE inbox_by_key (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       TEXT NOT NULL,
    key           TEXT NOT NULL REFERENCES notifications(key),
    created_at    INTEGER NOT NULL,
    delivered_at  INTEGER,
    UNIQUE (key, user_id)
);
INSERT INTO inbox_by_key (seq, user_id, key, created_at, delivered_at)
    SELECT seq, user_id, key, created_at, delivered_at FROM inbox ORDER BY seq;
DELETE FROM sqlite_sequence WHERE name = 'inbox_by_key';
INSERT INTO sqlite_sequence (name, seq) SELECT 'inbox_by_key', seq FROM sqlite_sequence WHERE name = 'inbox';
DROP TABLE inbox;
ALTER TABLE inbox_by_key RENAME TO inbox;
CREATE INDEX inbox_user_seq ON inbox(user_id, seq);
