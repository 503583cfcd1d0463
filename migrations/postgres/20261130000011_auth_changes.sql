-- Notifications that say what a change to token rights concerns, so that
-- token caches evict only the entries concerned instead of everything.
-- Being triggers, they report changes made in an SQL console too.
--
-- At commit, each statement that changed such rows sends
-- 'chg <txid> <keys>' on the channel the caches listen on: keys are
-- 'token:<id>' (a token row other than its "last used" time),
-- 'member:<workspace>:<user>' (a membership), 'user:<id>' (a user's status
-- or identity) and 'workspace:<id>', comma-separated; past 100 keys, or
-- for TRUNCATE, the single key '*' (empty everything). Inserting a token
-- changes nothing a cache holds, so it sends nothing. The 'inv <txid>'
-- that Tollgate sends last in its own changing transactions asks the other
-- instances to acknowledge, as before; it no longer comes from triggers.
--
-- Statement triggers with transition tables: one notification per
-- statement, however many rows it changed. PostgreSQL allows no column
-- list on those, so updates compare old and new rows themselves ("last
-- used" writes and token-version bumps send nothing).

CREATE FUNCTION tollgate_auth_send(keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(keys) > 100 THEN
        keys := ARRAY['*'];
    END IF;
    PERFORM pg_notify('tollgate_auth',
        'chg ' || txid_current()::text || ' ' || array_to_string(keys, ','));
END;
$$;

CREATE FUNCTION tollgate_auth_everything() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY['*']);
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_tokens_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT 'token:' || o.id FROM old_rows o
        WHERE NOT EXISTS (
            SELECT 1 FROM new_rows n
            WHERE n.id = o.id AND n.digest = o.digest AND n.scope = o.scope
              AND n.expires_at IS NOT DISTINCT FROM o.expires_at
              AND n.user_id = o.user_id AND n.workspace_id = o.workspace_id
              AND n.name = o.name)
        LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_tokens_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(SELECT 'token:' || id FROM old_rows LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_memberships_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT 'member:' || workspace_id || ':' || user_id FROM new_rows LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_memberships_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT DISTINCT 'member:' || workspace_id || ':' || user_id FROM (
            SELECT workspace_id, user_id FROM old_rows
            UNION ALL SELECT workspace_id, user_id FROM new_rows) AS changed
        LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_memberships_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT 'member:' || workspace_id || ':' || user_id FROM old_rows LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_users_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT 'user:' || o.id FROM old_rows o
        WHERE NOT EXISTS (
            SELECT 1 FROM new_rows n
            WHERE n.id = o.id AND n.email = o.email AND n.name = o.name
              AND n.disabled_at IS NOT DISTINCT FROM o.disabled_at)
        LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_users_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(SELECT 'user:' || id FROM old_rows LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_workspaces_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(
        SELECT 'workspace:' || o.id FROM old_rows o
        WHERE NOT EXISTS (
            SELECT 1 FROM new_rows n WHERE n.id = o.id AND n.name = o.name)
        LIMIT 101));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tollgate_auth_workspaces_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_auth_send(ARRAY(SELECT 'workspace:' || id FROM old_rows LIMIT 101));
    RETURN NULL;
END;
$$;

DROP TRIGGER auth_changed_token_update ON personal_access_tokens;
DROP TRIGGER auth_changed_token_delete ON personal_access_tokens;
DROP TRIGGER auth_changed_membership ON memberships;
DROP TRIGGER auth_changed_user_update ON users;
DROP TRIGGER auth_changed_user_delete ON users;
DROP TRIGGER auth_changed_workspace ON workspaces;
DROP FUNCTION tollgate_auth_changed();

CREATE TRIGGER auth_changes_token_update
AFTER UPDATE ON personal_access_tokens REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_tokens_updated();

CREATE TRIGGER auth_changes_token_delete
AFTER DELETE ON personal_access_tokens REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_tokens_deleted();

CREATE TRIGGER auth_changes_token_truncate
AFTER TRUNCATE ON personal_access_tokens
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_everything();

CREATE TRIGGER auth_changes_membership_insert
AFTER INSERT ON memberships REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_memberships_added();

CREATE TRIGGER auth_changes_membership_update
AFTER UPDATE ON memberships REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_memberships_updated();

CREATE TRIGGER auth_changes_membership_delete
AFTER DELETE ON memberships REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_memberships_removed();

CREATE TRIGGER auth_changes_membership_truncate
AFTER TRUNCATE ON memberships
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_everything();

CREATE TRIGGER auth_changes_user_update
AFTER UPDATE ON users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_users_updated();

CREATE TRIGGER auth_changes_user_delete
AFTER DELETE ON users REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_users_deleted();

CREATE TRIGGER auth_changes_workspace_update
AFTER UPDATE ON workspaces REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_workspaces_updated();

CREATE TRIGGER auth_changes_workspace_delete
AFTER DELETE ON workspaces REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION tollgate_auth_workspaces_deleted();
