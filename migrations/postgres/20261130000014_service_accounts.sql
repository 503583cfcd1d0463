-- Service accounts: users rows of kind 'service_account' that belong to one
-- workspace (their only membership, with their role), have no password
-- (an empty hash matches nothing) and no sign-in email (the email column
-- holds a placeholder that is never a valid address). `created_by` names
-- the Admin who made one, for display only: nothing depends on it.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'member'
    CHECK (kind IN ('member', 'service_account'));
ALTER TABLE users ADD COLUMN created_by BIGINT REFERENCES users(id) ON DELETE SET NULL;

-- A change of kind changes how a token may authenticate (Basic or not).
-- The users trigger reports rows whose rights-relevant columns changed; the
-- kind is one of them now.
CREATE OR REPLACE FUNCTION tollgate_auth_users_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT 'user:' || o.id FROM old_rows o
        WHERE NOT EXISTS (
            SELECT 1 FROM new_rows n
            WHERE n.id = o.id AND n.email = o.email AND n.name = o.name
              AND n.disabled_at IS NOT DISTINCT FROM o.disabled_at
              AND n.kind = o.kind)
        LIMIT 101));
    RETURN NULL;
END;
$$;
