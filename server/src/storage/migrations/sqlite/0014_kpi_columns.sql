-- The flat part of a petition's summary a KPI report reads (sync-core's
-- `kpi::KpiRow`), written by the write path with the summary, so a report
-- over 100,000 petitions reads narrow columns instead of decoding every
-- summary. Rows written before this migration have kpi_ready = 0 and are
-- read from their summary instead.
ALTER TABLE petitions ADD COLUMN kpi_ready INTEGER NOT NULL DEFAULT 0;
ALTER TABLE petitions ADD COLUMN in_rates INTEGER;
ALTER TABLE petitions ADD COLUMN sign_start INTEGER;
ALTER TABLE petitions ADD COLUMN sign_done INTEGER;
ALTER TABLE petitions ADD COLUMN sign_due INTEGER;
ALTER TABLE petitions ADD COLUMN contact_start INTEGER;
ALTER TABLE petitions ADD COLUMN contact_done INTEGER;
ALTER TABLE petitions ADD COLUMN contact_due INTEGER;
ALTER TABLE petitions ADD COLUMN reply_start INTEGER;
ALTER TABLE petitions ADD COLUMN reply_done INTEGER;
ALTER TABLE petitions ADD COLUMN reply_due INTEGER;
ALTER TABLE petitions ADD COLUMN receipt_clocks INTEGER;
ALTER TABLE petitions ADD COLUMN escalated INTEGER;
ALTER TABLE petitions ADD COLUMN skew_flagged INTEGER;
