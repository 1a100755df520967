-- lists and their companies; the lists projection consumes company events
-- too, so a deleted company leaves every list
create table lists
(
    id           uuid primary key,
    workspace_id uuid        not null,
    name         text        not null,
    created_by   uuid        not null,
    created_at   timestamptz not null,
    updated_at   timestamptz not null,
    version      bigint      not null
);
create index lists_workspace_idx on lists (workspace_id, id);

create table list_items
(
    list_id      uuid        not null,
    company_id   uuid        not null,
    workspace_id uuid        not null,
    added_by     uuid        not null,
    added_at     timestamptz not null,
    primary key (list_id, company_id)
);
create index list_items_company_idx on list_items (company_id);
