-- The HTTP API's tables and columns.

-- Whether a petition's result is published (公开晒单), for list filters and
-- the public board; rows written before this migration read as unpublished
-- until their petition next changes.
ALTER TABLE petitions ADD COLUMN published BIGINT NOT NULL DEFAULT 0;
CREATE INDEX petitions_published_location ON petitions(published, location_unit);
CREATE INDEX petitions_channel ON petitions(channel);

-- A disabled unit stays in the tree (its history refers to it) but is shown as such.
ALTER TABLE units ADD COLUMN disabled_at BIGINT;

-- Settings administered at run time (clock rules, the working-day calendar), as JSON.
CREATE TABLE settings (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- A counter per kind of configuration (`org`, `settings`), raised by every
-- transaction that changes it: running servers poll it and reload.
CREATE TABLE config_versions (
    name     TEXT PRIMARY KEY NOT NULL,
    version  BIGINT NOT NULL
);
INSERT INTO config_versions (name, version) VALUES ('org', 0), ('settings', 0);
