-- values one aggregate holds exclusively within a scope (account emails);
-- written by the same statement as the events that claim or release them
create table unique_values
(
    scope          text        not null,
    value          text        not null,
    aggregate_type text        not null,
    aggregate_id   text        not null,
    claimed_at     timestamptz not null default now(),
    primary key (scope, value)
);

-- credentials are never in events (events go to every subscriber)
create table user_credentials
(
    user_id       uuid primary key,
    password_hash text        not null,
    updated_at    timestamptz not null default now()
);

-- a login session; its refresh tokens form one rotation family
create table auth_sessions
(
    id                uuid primary key,
    user_id           uuid        not null,
    created_at        timestamptz not null default now(),
    last_refreshed_at timestamptz not null default now(),
    expires_at        timestamptz not null,
    revoked_at        timestamptz,
    revoked_reason    text,
    ip                text,
    user_agent        text
);
create index auth_sessions_live_by_user_idx on auth_sessions (user_id) where revoked_at is null;

-- only hashes are stored; a used token stays to detect its reuse
create table refresh_tokens
(
    token_hash bytea primary key,
    session_id uuid        not null references auth_sessions (id) on delete cascade,
    issued_at  timestamptz not null default now(),
    used_at    timestamptz
);
create index refresh_tokens_session_idx on refresh_tokens (session_id);

-- the hash of each API key's secret; the key's life (role, revocation) is in
-- the workspace's events
create table api_key_secrets
(
    key_id       uuid primary key,
    workspace_id uuid        not null,
    secret_hash  bytea       not null,
    created_at   timestamptz not null default now()
);

-- the security log: sign-in failures, lockouts, sessions revoked, keys and
-- roles changed, rate limits hit
create table security_events
(
    id           uuid primary key,
    occurred_at  timestamptz not null default now(),
    kind         text        not null,
    workspace_id uuid,
    user_id      uuid,
    ip           text,
    detail       jsonb       not null default '{}'
);
create index security_events_workspace_idx on security_events (workspace_id, occurred_at desc, id desc);
create index security_events_user_idx on security_events (user_id, occurred_at desc, id desc);

-- sliding-window rate-limit counters shared by every API instance; unlogged:
-- losing them in a crash only forgives some requests
create unlogged table rate_limit_windows
(
    bucket       text   not null,
    window_start bigint not null,
    hits         integer not null,
    primary key (bucket, window_start)
);

-- read models built from user and workspace events
create table users
(
    id            uuid primary key,
    email         text        not null,
    name          text        not null,
    tier          text        not null,
    registered_at timestamptz not null,
    version       bigint      not null
);

create table workspaces
(
    id         uuid primary key,
    name       text        not null,
    personal   boolean     not null,
    created_by uuid        not null,
    created_at timestamptz not null,
    version    bigint      not null
);

create table workspace_members
(
    workspace_id uuid        not null,
    user_id      uuid        not null,
    email        text        not null,
    role         text        not null,
    joined_at    timestamptz not null,
    primary key (workspace_id, user_id)
);
create index workspace_members_user_idx on workspace_members (user_id);

-- pending invitations, found by email when someone signs up or in
create table workspace_invitations
(
    id           uuid primary key,
    workspace_id uuid        not null,
    email        text        not null,
    role         text        not null,
    invited_by   uuid        not null,
    invited_at   timestamptz not null,
    unique (workspace_id, email)
);
create index workspace_invitations_email_idx on workspace_invitations (email);

create table api_keys
(
    id           uuid primary key,
    workspace_id uuid        not null,
    name         text        not null,
    prefix       text        not null,
    role         text        not null,
    created_by   uuid        not null,
    created_at   timestamptz not null,
    revoked_at   timestamptz
);
create index api_keys_workspace_idx on api_keys (workspace_id, created_at, id);
