-- filtering, full-text search and sorting of companies within a workspace;
-- score stays empty until enrichment fills it
alter table companies add column score integer;
alter table companies add column search tsvector generated always as (
    to_tsvector('simple',
        coalesce(name, '') || ' ' || replace(website, '.', ' ') || ' ' ||
        coalesce(sector, '') || ' ' || coalesce(location, ''))
) stored;
create index companies_search_idx on companies using gin (search);
create index companies_name_idx on companies (workspace_id, lower(name), id);
create index companies_score_idx on companies (workspace_id, (coalesce(score, -1)), id);
create index companies_sector_idx on companies (workspace_id, lower(sector));
create index companies_stage_idx on companies (workspace_id, stage);
create index companies_location_idx on companies (workspace_id, lower(location));
