drop table enrichment_usage;
drop index enrichment_jobs_cache_idx;
alter table enrichment_jobs drop column website;
