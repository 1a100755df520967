-- the audit feed reads a workspace's events in commit order
alter table events add column workspace_id uuid
    generated always as ((metadata ->> 'workspace_id')::uuid) stored;
create index events_workspace_order_idx on events (workspace_id, tx_id, position);
