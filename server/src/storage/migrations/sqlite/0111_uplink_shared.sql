-- At a station: the heads it shares with the tier above, one row per
-- document, written only where they changed. They were part of the
-- uplink's state document, which then had to be written whole (megabytes
-- for a station of 20,000 documents) after every frame and every idle
-- round. A state saved before this table keeps its heads inline until the
-- uplink next saves it.
CREATE TABLE uplink_shared (
    doc_id  TEXT PRIMARY KEY NOT NULL,
    heads   TEXT NOT NULL
);
