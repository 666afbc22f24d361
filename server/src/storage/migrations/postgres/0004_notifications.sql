-- Notification fan-out: derived notifications, per-user inboxes, duty rosters,
-- clock actions already carried out, households, notice deliveries and the
-- outbox of pushes and text messages. Times are milliseconds since the Unix epoch.

-- One row per notification key (sync-core's `{doc}/{source}/{what}/{target}`):
-- a notification derived twice (two nodes, a retry, a restart) is stored once.
CREATE TABLE notifications (
    key         TEXT PRIMARY KEY NOT NULL,
    doc_id      TEXT NOT NULL,
    doc         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    entry       TEXT,
    urgent      BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    text        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX notifications_recipient ON notifications(recipient);
CREATE INDEX notifications_doc ON notifications(doc_id);

-- The per-user inbox: one row per person and notification. `seq` is the
-- cursor; rows are appended under the change-log lock, so seqs become
-- visible in order and a reader past a seq never misses a lower one.
CREATE TABLE inbox (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       TEXT NOT NULL,
    key           TEXT NOT NULL REFERENCES notifications(key),
    created_at    BIGINT NOT NULL,
    delivered_at  BIGINT,
    UNIQUE (user_id, key)
);
CREATE INDEX inbox_user_seq ON inbox(user_id, seq);

-- How far each user has acknowledged their inbox.
CREATE TABLE inbox_acks (
    user_id   TEXT PRIMARY KEY NOT NULL,
    acked     BIGINT NOT NULL,
    acked_at  BIGINT NOT NULL
);

-- Clock actions carried out (auto-escalations), recorded in the transaction
-- that wrote them, so a restart or another node never fires them again.
CREATE TABLE fired_keys (
    key       TEXT PRIMARY KEY NOT NULL,
    fired_at  BIGINT NOT NULL
);

-- A unit's 7x24 duty roster (sync-core `Roster` JSON) and where the
-- hand-over stands: the next shift boundary the scheduler will act on.
CREATE TABLE rosters (
    unit_id        TEXT PRIMARY KEY NOT NULL,
    roster         TEXT NOT NULL,
    updated_by     TEXT NOT NULL,
    updated_at     BIGINT NOT NULL,
    next_handover  BIGINT
);

-- Households as the village directories list them.
CREATE TABLE households (
    household_id    TEXT PRIMARY KEY NOT NULL,
    village_unit    TEXT NOT NULL,
    name            TEXT NOT NULL,
    representative  TEXT,
    moved_out       BIGINT NOT NULL,
    doc_id          TEXT NOT NULL
);
CREATE INDEX households_village ON households(village_unit);
CREATE INDEX households_representative ON households(representative);
CREATE INDEX users_household ON users(household_id);

-- One delivery record per household a notice went to, with the earliest
-- receipt of each kind from the notice document.
CREATE TABLE notice_deliveries (
    doc_id        TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    household_id  TEXT NOT NULL,
    notified_at   BIGINT NOT NULL,
    delivered_at  BIGINT,
    read_at       BIGINT,
    forwarded_at  BIGINT,
    PRIMARY KEY (doc_id, household_id)
);

-- Pushes and text messages for people without a live connection.
CREATE TABLE outbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inbox_seq        BIGINT NOT NULL,
    key              TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    channel          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    done_at          BIGINT,
    UNIQUE (key, user_id, channel)
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
