drop table enrichment_jobs;
drop index companies_search_idx;
alter table companies drop column search;
alter table companies
    drop column summary,
    drop column what_it_does,
    drop column keywords,
    drop column enrichment,
    drop column enriched_at,
    drop column enrichment_text;
alter table companies add column search tsvector generated always as (
    to_tsvector('simple',
        coalesce(name, '') || ' ' || replace(website, '.', ' ') || ' ' ||
        coalesce(sector, '') || ' ' || coalesce(location, ''))
) stored;
create index companies_search_idx on companies using gin (search);
