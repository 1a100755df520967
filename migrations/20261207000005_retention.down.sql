drop index rate_limit_windows_start_idx;
drop index auth_sessions_ended_idx;
alter table auth_sessions drop column ended_at;
drop index security_events_occurred_idx;
