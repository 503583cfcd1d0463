-- Repeated events (failed sign-ins) are kept as one row per aggregate key
-- (address, account, time window) with a count, so a flood can not fill the
-- table; the retention cleanup deletes by age.
ALTER TABLE audit_events ADD COLUMN aggregate_key TEXT;
ALTER TABLE audit_events ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX audit_events_aggregate ON audit_events(aggregate_key);
CREATE INDEX audit_events_created ON audit_events(created_at);
