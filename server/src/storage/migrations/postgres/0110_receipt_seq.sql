-- The seq of the write that recorded each receipt, so that the receipts a
-- station's uplink pushes, and those a pull sends a station, are only the
-- ones recorded since the other tier last heard from this one. Rows
-- recorded before this column get 1: a tier that has never synced (cursor
-- 0) is sent them, one past them is not. Every insert names its seq.
ALTER TABLE entry_receipts ADD COLUMN seq BIGINT NOT NULL DEFAULT 1;
