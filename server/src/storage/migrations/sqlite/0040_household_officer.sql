-- The officer a village directory assigns to each household (户户通): a
-- household's messages on its household line and the petitions it files on
-- the household line reach this officer (sync-core's `write::Needs`). Rows
-- written before this migration get their officer at their directory's next
-- write; until then, as before, such messages go to the line's unit.
ALTER TABLE households ADD COLUMN officer TEXT;
