-- An inbox row is unique by (key, user_id) rather than (user_id, key): the
-- rows one notification adds for thousands of people then sit side by side
-- in the index instead of one in every user's stretch of it (see the SQLite
-- migration of the same name for the figures).
ALTER TABLE inbox DROP CONSTRAINT inbox_user_id_key_key;
ALTER TABLE inbox ADD CONSTRAINT inbox_key_user_id_key UNIQUE (key, user_id);
