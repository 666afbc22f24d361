-- A counter raised by every revocation (a token, a session, every session
-- of a user): each node polls it a few times a second and, when it moved,
-- checks the tokens its live connections hold, so `lianxin admin revoke`
-- and other nodes' revocations close connections within a second.
INSERT INTO config_versions (name, version) VALUES ('revocations', 0);
