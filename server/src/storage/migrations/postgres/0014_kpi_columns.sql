-- The flat part of a petition's summary a KPI report reads (sync-core's
-- `kpi::KpiRow`), written by the write path with the summary, so a report
-- over 100,000 petitions reads narrow columns instead of decoding every
-- summary. Rows written before this migration have kpi_ready = 0 and are
-- read from their summary instead.
ALTER TABLE petitions ADD COLUMN kpi_ready BIGINT NOT NULL DEFAULT 0;
ALTER TABLE petitions ADD COLUMN in_rates BIGINT;
ALTER TABLE petitions ADD COLUMN sign_start BIGINT;
ALTER TABLE petitions ADD COLUMN sign_done BIGINT;
ALTER TABLE petitions ADD COLUMN sign_due BIGINT;
ALTER TABLE petitions ADD COLUMN contact_start BIGINT;
ALTER TABLE petitions ADD COLUMN contact_done BIGINT;
ALTER TABLE petitions ADD COLUMN contact_due BIGINT;
ALTER TABLE petitions ADD COLUMN reply_start BIGINT;
ALTER TABLE petitions ADD COLUMN reply_done BIGINT;
ALTER TABLE petitions ADD COLUMN reply_due BIGINT;
ALTER TABLE petitions ADD COLUMN receipt_clocks BIGINT;
ALTER TABLE petitions ADD COLUMN escalated BIGINT;
ALTER TABLE petitions ADD COLUMN skew_flagged BIGINT;
