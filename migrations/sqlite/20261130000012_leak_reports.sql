-- Tokens that a secret scanner reported as leaked and that were revoked for
-- it: the notice on the owner's tokens tab and on the Workspace tokens page.
-- The token row is deleted by then, so its name and last four characters
-- are kept here (never the secret or its digest).
CREATE TABLE leak_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    token_id INTEGER NOT NULL,
    token_name TEXT NOT NULL,
    last4 TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    reported_at INTEGER NOT NULL
);
CREATE INDEX leak_reports_user ON leak_reports(user_id, reported_at);
CREATE INDEX leak_reports_workspace ON leak_reports(workspace_id, reported_at);

-- The audit log filtered by action, newest first.
CREATE INDEX audit_events_action ON audit_events(workspace_id, action, id);
