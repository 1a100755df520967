drop table identity_change_acks;
drop table identity_listeners;
drop trigger workspace_events_appended on events;
drop trigger auth_sessions_revoked on auth_sessions;
drop function notify_identity_changed();
drop function rate_limit_take(text, bigint, bigint, double precision, double precision, integer);
drop index rate_limit_windows_age_idx;
drop index unique_values_aggregate_idx;
