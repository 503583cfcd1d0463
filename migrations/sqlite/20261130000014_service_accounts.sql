-- Service accounts: users rows of kind 'service_account' that belong to one
-- workspace (their only membership, with their role), have no password
-- (an empty hash matches nothing) and no sign-in email (the email column
-- holds a placeholder that is never a valid address). `created_by` names
-- the Admin who made one, for display only: nothing depends on it.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'member'
    CHECK (kind IN ('member', 'service_account'));
ALTER TABLE users ADD COLUMN created_by INTEGER REFERENCES users(id) ON DELETE SET NULL;

-- A change of kind changes how a token may authenticate (Basic or not).
CREATE TRIGGER auth_changes_user_kind_update
AFTER UPDATE OF kind ON users
BEGIN INSERT INTO auth_changes (kind, a) VALUES ('user', OLD.id); END;
