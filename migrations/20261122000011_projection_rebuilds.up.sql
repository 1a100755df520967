-- blue/green rebuilds of read models: the fresh tables are built in a schema
-- of their own (`rebuild_<read model>`) while the live ones keep serving; this
-- row says how far the replay got, in the same transaction as each batch, so
-- a rebuild that is killed resumes where it stopped
create table projection_rebuilds
(
    read_model      text primary key,
    state           text        not null check (state in ('running', 'swapped')),
    -- the latest migration when the fresh tables were copied: a resume under
    -- another schema starts over instead of swapping in stale tables
    schema_version  bigint      not null,
    cursor_tx       xid8        not null default '0',
    cursor_position bigint      not null default 0,
    replayed        bigint      not null default 0,
    total           bigint      not null default 0,
    runs            integer     not null default 1,
    started_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    finished_at     timestamptz,
    last_error      text
);
