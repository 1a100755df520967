-- a person's data export (GET /v1/me/export) reads by person: the events
-- they caused (their metadata's actor), all their sessions (not only live
-- ones) and their enrichment usage
create index events_actor_idx on events ((metadata ->> 'actor_id'), position)
    where metadata ->> 'actor_id' is not null;
create index auth_sessions_user_idx on auth_sessions (user_id, created_at);
create index enrichment_usage_user_idx on enrichment_usage (user_id);
