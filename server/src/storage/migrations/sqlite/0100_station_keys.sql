-- At the tier above: the token keys each station publishes (`PUT
-- /api/station/keys`, the station's `GET /api/auth/keys`), so a token a
-- station issued is accepted here, for the people that station speaks for
-- only. One key set per station account, replaced when it rotates.
CREATE TABLE station_keys (
    station     TEXT PRIMARY KEY NOT NULL,
    key_set     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
