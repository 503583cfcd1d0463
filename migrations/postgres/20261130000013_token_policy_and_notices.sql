-- A workspace's token policy: the longest lifetime a new token may have
-- (NULL: no limit) and whether an expiration date is required. A workspace
-- without a row has no policy.
CREATE TABLE token_policies (
    workspace_id BIGINT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    max_lifetime_days BIGINT CHECK (max_lifetime_days IN (7, 30, 90, 365)),
    require_expiry BIGINT NOT NULL DEFAULT 0 CHECK (require_expiry IN (0, 1)),
    updated_at BIGINT NOT NULL
);

-- The one "your token expires soon" email per token: a row is written
-- before the email goes out, so no instance and no restart sends it twice.
CREATE TABLE token_expiry_notices (
    token_id BIGINT PRIMARY KEY REFERENCES personal_access_tokens(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    sent_at BIGINT NOT NULL
);
