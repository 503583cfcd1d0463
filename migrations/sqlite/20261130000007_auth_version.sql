-- An auth version that advances with every change to what a token may do:
-- token rows (not their "last used" time), memberships, a user's status or
-- identity, workspaces. Instances sharing this file compare it after other
-- processes' commits and clear their token caches only when it moved, so
-- sessions, audit events and "last used" writes leave the caches alone.
-- Being triggers, they see changes made in an SQL console too.

CREATE TABLE auth_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO auth_version (id, version) VALUES (1, 0);

CREATE TRIGGER auth_version_token_update
AFTER UPDATE OF digest, scope, expires_at, user_id, workspace_id, name ON personal_access_tokens
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_token_delete
AFTER DELETE ON personal_access_tokens
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_membership_insert
AFTER INSERT ON memberships
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_membership_update
AFTER UPDATE ON memberships
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_membership_delete
AFTER DELETE ON memberships
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_user_update
AFTER UPDATE OF email, name, disabled_at ON users
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_user_delete
AFTER DELETE ON users
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_workspace_update
AFTER UPDATE OF name ON workspaces
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER auth_version_workspace_delete
AFTER DELETE ON workspaces
BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END;
