-- Every change to what a token may do (token rows other than their "last
-- used" time, memberships, a user's status or identity, workspaces)
-- notifies the channel the token caches listen on, at commit, with the id
-- of the changing transaction. Being triggers, they report changes made in
-- an SQL console too. Sessions, audit events and "last used" writes do not
-- notify, so they leave the caches alone.

CREATE FUNCTION tollgate_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tollgate_auth', 'inv ' || txid_current()::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER auth_changed_token_update
AFTER UPDATE OF digest, scope, expires_at, user_id, workspace_id, name ON personal_access_tokens
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_changed();

CREATE TRIGGER auth_changed_token_delete
AFTER DELETE OR TRUNCATE ON personal_access_tokens
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_changed();

CREATE TRIGGER auth_changed_membership
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON memberships
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_changed();

CREATE TRIGGER auth_changed_user_update
AFTER UPDATE OF email, name, disabled_at ON users
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_changed();

CREATE TRIGGER auth_changed_user_delete
AFTER DELETE ON users
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_changed();

CREATE TRIGGER auth_changed_workspace
AFTER UPDATE OF name OR DELETE ON workspaces
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_changed();
