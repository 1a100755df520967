-- the last event each projection could not apply, for `projections status`
create table projection_errors
(
    projection  text primary key,
    event_id    uuid        not null,
    aggregate   text        not null,
    error       text        not null,
    failures    bigint      not null default 1,
    occurred_at timestamptz not null default now()
);
