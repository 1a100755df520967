-- the version of each aggregate a projection has applied; it outlives the
-- read-model row (a deleted company keeps its version), so a redelivered old
-- event can never resurrect a row
create table projection_versions
(
    projection   text   not null,
    aggregate_id text   not null,
    version      bigint not null check (version >= 0),
    primary key (projection, aggregate_id)
);

create table companies
(
    id           uuid primary key,
    workspace_id uuid        not null,
    name         text        not null,
    website      text        not null,
    sector       text,
    stage        text,
    location     text,
    added_by     uuid        not null,
    added_at     timestamptz not null,
    updated_at   timestamptz not null,
    version      bigint      not null,
    -- when this row was last written by the projector: projection lag per
    -- row is projected_at minus the event's recorded_at
    projected_at timestamptz not null default clock_timestamp()
);

-- cursor pagination within a workspace walks this index
create index companies_workspace_id_idx on companies (workspace_id, id);
