-- what the retention sweeps (infra/src/retention.rs) delete along, so each
-- batch reads index entries, not the table: security-log entries by when
-- they happened, sessions by when they ended (expired or revoked), and
-- rate-limit windows by their start (the sweep that had only the primary
-- key, led by the bucket, read every row)
create index security_events_occurred_idx on security_events (occurred_at);
alter table auth_sessions
    add column ended_at timestamptz
        generated always as (least(expires_at, coalesce(revoked_at, expires_at))) stored;
create index auth_sessions_ended_idx on auth_sessions (ended_at);
create index rate_limit_windows_start_idx on rate_limit_windows (window_start);
