-- Inbox rows name their notification by a number instead of repeating its
-- key (about 80 bytes): an @all to 10,000 people wrote its key 20,000 times,
-- into the rows and into the (key, user_id) index.
ALTER TABLE notifications ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE notifications ADD CONSTRAINT notifications_id_key UNIQUE (id);

ALTER TABLE inbox ADD COLUMN notification_id BIGINT;
UPDATE inbox i SET notification_id = n.id FROM notifications n WHERE n.key = i.key;
ALTER TABLE inbox ALTER COLUMN notification_id SET NOT NULL;
ALTER TABLE inbox ADD CONSTRAINT inbox_notification_id_fkey
    FOREIGN KEY (notification_id) REFERENCES notifications(id);
ALTER TABLE inbox DROP CONSTRAINT inbox_key_user_id_key;
ALTER TABLE inbox ADD CONSTRAINT inbox_notification_id_user_id_key UNIQUE (notification_id, user_id);
ALTER TABLE inbox DROP COLUMN key;
