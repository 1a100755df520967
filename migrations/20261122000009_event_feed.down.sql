drop index events_workspace_order_idx;
alter table events drop column workspace_id;
