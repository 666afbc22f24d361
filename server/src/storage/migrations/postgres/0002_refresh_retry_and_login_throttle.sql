-- The token a refresh token was exchanged for: lets a client whose answer
-- was lost retry within a grace period without tripping reuse detection.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;

-- Failed password sign-ins, for throttling guessing per login name.
CREATE TABLE login_failures (
    login_name  TEXT NOT NULL,
    failed_at   BIGINT NOT NULL
);
CREATE INDEX login_failures_login ON login_failures(login_name, failed_at);
