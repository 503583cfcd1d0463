-- What each change to token rights concerns, so that token caches evict
-- only the entries concerned instead of everything. Triggers append one
-- row per changed row (so changes made in an SQL console are logged too):
-- a token row other than its "last used" time ('token', id), a membership
-- ('member', workspace, user), a user's status or identity ('user', id), a
-- workspace ('workspace', id). Instances sharing this file read the rows
-- after the last sequence number they have seen when another commit moved
-- the file; a row missing from the sequence (pruned unread) makes them
-- empty their caches. AUTOINCREMENT: sequence numbers are never reused.
-- Inserting a token changes nothing a cache holds, so it is not logged.

CREATE TABLE auth_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    a INTEGER NOT NULL,
    b INTEGER
);

CREATE TRIGGER auth_changes_token_update
AFTER UPDATE OF id, digest, scope, expires_at, user_id, workspace_id, name ON personal_access_tokens
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('token', OLD.id); END;

CREATE TRIGGER auth_changes_token_delete
AFTER DELETE ON personal_access_tokens
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('token', OLD.id); END;

CREATE TRIGGER auth_changes_membership_insert
AFTER INSERT ON memberships
BEGIN INSERT INTO auth_changes (kind, a, b) VALUES ('member', NEW.workspace_id, NEW.user_id); END;

CREATE TRIGGER auth_changes_membership_update
AFTER UPDATE ON memberships
BEGIN
    INSERT INTO auth_changes (kind, a, b) VALUES ('member', OLD.workspace_id, OLD.user_id);
    INSERT INTO auth_changes (kind, a, b) VALUES ('member', NEW.workspace_id, NEW.user_id);
END;

CREATE TRIGGER auth_changes_membership_delete
AFTER DELETE ON memberships
BEGIN INSERT INTO auth_changes (kind, a, b) VALUES ('member', OLD.workspace_id, OLD.user_id); END;

CREATE TRIGGER auth_changes_user_update
AFTER UPDATE OF id, email, name, disabled_at ON users
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('user', OLD.id); END;

CREATE TRIGGER auth_changes_user_delete
AFTER DELETE ON users
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('user', OLD.id); END;

CREATE TRIGGER auth_changes_workspace_update
AFTER UPDATE OF id, name ON workspaces
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('workspace', OLD.id); END;

CREATE TRIGGER auth_changes_workspace_delete
AFTER DELETE ON workspaces
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('workspace', OLD.id); END;

-- The single auth version these rows replace.
DROP TRIGGER auth_version_token_update;
DROP TRIGGER auth_version_token_delete;
DROP TRIGGER auth_version_membership_insert;
DROP TRIGGER auth_version_membership_update;
DROP TRIGGER auth_version_membership_delete;
DROP TRIGGER auth_version_user_update;
DROP TRIGGER auth_version_user_delete;
DROP TRIGGER auth_version_workspace_update;
DROP TRIGGER auth_version_workspace_delete;
DROP TABLE auth_version;
