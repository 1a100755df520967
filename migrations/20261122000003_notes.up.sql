-- notes on companies; a company's deletion removes its notes (the notes
-- projection sees company events too) and leaves a tombstone, so a note
-- whose add raced the deletion is never shown
create table notes
(
    id           uuid primary key,
    workspace_id uuid        not null,
    company_id   uuid        not null,
    content      text        not null,
    added_by     uuid        not null,
    added_at     timestamptz not null,
    updated_at   timestamptz not null,
    version      bigint      not null
);
create index notes_company_idx on notes (workspace_id, company_id, id desc);

-- per projection, so each can be rebuilt on its own
create table company_tombstones
(
    projection text        not null,
    company_id uuid        not null,
    deleted_at timestamptz not null,
    primary key (projection, company_id)
);
