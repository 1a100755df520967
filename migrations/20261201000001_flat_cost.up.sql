-- releasing an aggregate's unique values (a website change, a deletion)
-- finds them by aggregate: without this index every append scanned the
-- whole table (10-25 ms at 100k values)
create index unique_values_aggregate_idx on unique_values (aggregate_type, aggregate_id);

-- the background sweep of old rate-limit windows finds them by age
create index rate_limit_windows_age_idx on rate_limit_windows (window_start);

-- takes up to p_want requests from a bucket's sliding window (previous
-- window weighted by p_previous_weight, plus the current one) without
-- passing p_max; the current window's row is locked while it decides, so
-- instances sharing the bucket never overshoot together. Returns how many
-- were granted (0: refused) and both windows' counts after the grant.
create function rate_limit_take(
    p_bucket text, p_window bigint, p_previous_window bigint,
    p_previous_weight double precision, p_max double precision, p_want integer,
    out granted integer, out previous_hits integer, out current_hits integer)
language plpgsql as $$
begin
    select coalesce((select hits from rate_limit_windows
                     where bucket = p_bucket and window_start = p_previous_window), 0)
      into previous_hits;
    insert into rate_limit_windows as w (bucket, window_start, hits)
    values (p_bucket, p_window, 0)
    on conflict (bucket, window_start) do update set hits = w.hits
    returning hits into current_hits;
    granted := greatest(0, least(p_want,
        floor(p_max - previous_hits * p_previous_weight - current_hits)::integer));
    if granted > 0 then
        update rate_limit_windows set hits = hits + granted
        where bucket = p_bucket and window_start = p_window;
        current_hits := current_hits + granted;
    end if;
end $$;

-- API instances cache session liveness and workspace state in memory; these
-- notifications, sent in the changing transaction itself (so only when it
-- commits, and whoever the writer is), tell every instance what to forget.
-- Both are rare writes, so the notification lock they take at commit costs
-- the hot path nothing (the command path's own relay nudge stays outside
-- its transaction for that reason). Each payload names one change exactly
-- (a session is revoked once; a workspace event by its version).
create function notify_identity_changed() returns trigger
language plpgsql as $$
begin
    if tg_table_name = 'auth_sessions' then
        perform pg_notify('vcintel_identity_changed', 'session:' || new.id::text);
    else
        perform pg_notify('vcintel_identity_changed',
                          'workspace:' || new.aggregate_id || ':' || new.sequence);
    end if;
    return null;
end $$;

-- every process listening for identity changes, by its listening session
-- (alive while that backend is), and the changes each has applied: the
-- process that made a change answers only once every listener that was
-- listening has applied it, so the next request anywhere sees it
create table identity_listeners
(
    id            uuid primary key,
    backend_pid   integer     not null,
    backend_start timestamptz not null,
    registered_at timestamptz not null default clock_timestamp()
);

create table identity_change_acks
(
    change   text        not null,
    listener uuid        not null,
    acked_at timestamptz not null default now(),
    primary key (change, listener)
);
create index identity_change_acks_age_idx on identity_change_acks (acked_at);

create trigger auth_sessions_revoked
    after update of revoked_at on auth_sessions
    for each row when (old.revoked_at is null and new.revoked_at is not null)
    execute function notify_identity_changed();

create trigger workspace_events_appended
    after insert on events
    for each row when (new.aggregate_type = 'workspace')
    execute function notify_identity_changed();
