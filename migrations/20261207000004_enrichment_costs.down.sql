drop table enrichment_month_costs;
drop table enrichment_workspace_costs;
