-- A change the tier above refused is announced to every phone (or station
-- below) whose cursor lies before the rebuilt document's last change: it
-- may have pulled the change before the refusal. Rows recorded before this
-- column get 0, so no cursor lies before them: phones learn of those as
-- before, when they push the change again.
ALTER TABLE upstream_refusals ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
