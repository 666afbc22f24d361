-- Tiers (station servers, `serve --upstream`).
--
-- At a station: what the tier above refused, by document and change, so the
-- change is refused here too whenever a phone sends it again; and the
-- uplink's persisted state (the batched-sync client state towards the tier
-- above, the local seq up to which changes were pushed, the directory's tag).
CREATE TABLE upstream_refusals (
    doc_id       TEXT NOT NULL,
    hash         TEXT NOT NULL,
    rule         TEXT NOT NULL,
    detail       TEXT NOT NULL,
    refused_at   BIGINT NOT NULL,
    PRIMARY KEY (doc_id, hash)
);

CREATE TABLE uplink_state (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    state  TEXT NOT NULL
);

-- At the tier above: when each station last completed an exchange, so a
-- report can say a station's petitions are as of then.
CREATE TABLE station_syncs (
    station       TEXT PRIMARY KEY NOT NULL,
    last_sync_at  BIGINT NOT NULL,
    cursor        BIGINT NOT NULL
);
