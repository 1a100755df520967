create table saved_searches
(
    id           uuid primary key,
    workspace_id uuid        not null,
    name         text        not null,
    filters      jsonb       not null,
    created_by   uuid        not null,
    created_at   timestamptz not null,
    updated_at   timestamptz not null,
    version      bigint      not null
);
create index saved_searches_workspace_idx on saved_searches (workspace_id, id);
