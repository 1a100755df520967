drop index enrichment_usage_user_idx;
drop index auth_sessions_user_idx;
drop index events_actor_idx;
