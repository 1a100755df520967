-- the enrichment cache looks up a workspace's earlier results by website
alter table enrichment_jobs add column website text not null default '';
create index enrichment_jobs_cache_idx on enrichment_jobs (workspace_id, website, finished_at desc)
    where state = 'succeeded';

-- model tokens and cost per workspace, user and month (the usage projection)
create table enrichment_usage
(
    workspace_id   uuid   not null,
    user_id        uuid   not null,
    month          date   not null,
    enrichments    bigint not null default 0,
    model_calls    bigint not null default 0,
    tokens_in      bigint not null default 0,
    tokens_out     bigint not null default 0,
    cost_micro_usd bigint not null default 0,
    primary key (workspace_id, month, user_id)
);
