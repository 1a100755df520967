-- enrichment: the latest result on each company (searchable), and the jobs
alter table companies
    add column summary         text,
    add column what_it_does    text,
    add column keywords        text[] not null default '{}',
    add column enrichment      jsonb,
    add column enriched_at     timestamptz,
    -- summary, what it does and keywords as one text, for the search vector
    -- (array_to_string is not immutable, so the projection writes this)
    add column enrichment_text text   not null default '';

drop index companies_search_idx;
alter table companies drop column search;
alter table companies add column search tsvector generated always as (
    to_tsvector('simple',
        coalesce(name, '') || ' ' || replace(website, '.', ' ') || ' ' ||
        coalesce(sector, '') || ' ' || coalesce(location, '') || ' ' || enrichment_text)
) stored;
create index companies_search_idx on companies using gin (search);

create table enrichment_jobs
(
    id           uuid primary key,
    workspace_id uuid        not null,
    company_id   uuid        not null,
    requested_by uuid        not null,
    state        text        not null,
    attempts     integer     not null default 0,
    error        text,
    retry_in_ms  bigint,
    result       jsonb,
    requested_at timestamptz not null,
    started_at   timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz not null,
    version      bigint      not null
);
create index enrichment_jobs_company_idx on enrichment_jobs (workspace_id, company_id, requested_at desc);
-- the per-user cap on queued and running jobs
create index enrichment_jobs_active_idx on enrichment_jobs (requested_by)
    where state in ('queued', 'running', 'deferred');
