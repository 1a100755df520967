-- what enrichment cost per workspace and month, and per month in all (the
-- usage projection keeps them beside `enrichment_usage`), so the operator
-- console's "top workspaces this month" and "cost per month" read a few
-- index entries, never every user's usage row
create table enrichment_workspace_costs
(
    month          date   not null,
    workspace_id   uuid   not null,
    enrichments    bigint not null default 0,
    model_calls    bigint not null default 0,
    cost_micro_usd bigint not null default 0,
    primary key (month, workspace_id)
);
create index enrichment_workspace_costs_top_idx
    on enrichment_workspace_costs (month, cost_micro_usd desc, workspace_id);

create table enrichment_month_costs
(
    month          date   not null primary key,
    enrichments    bigint not null default 0,
    model_calls    bigint not null default 0,
    tokens_in      bigint not null default 0,
    tokens_out     bigint not null default 0,
    cost_micro_usd bigint not null default 0
);

insert into enrichment_workspace_costs (month, workspace_id, enrichments, model_calls, cost_micro_usd)
select month, workspace_id, sum(enrichments), sum(model_calls), sum(cost_micro_usd)
from enrichment_usage
group by month, workspace_id;

insert into enrichment_month_costs (month, enrichments, model_calls, tokens_in, tokens_out, cost_micro_usd)
select month, sum(enrichments), sum(model_calls), sum(tokens_in), sum(tokens_out), sum(cost_micro_usd)
from enrichment_usage
group by month;
