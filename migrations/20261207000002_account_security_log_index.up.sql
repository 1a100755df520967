-- An account's own security log reads its account-level entries (filed
-- under no workspace) newest first; through the user index it had to pass
-- over every workspace-filed entry of that user (200k for an admin who
-- made many keys: 37 ms instead of a few index pages).
create index security_events_account_idx on security_events (user_id, occurred_at desc, id desc)
    where workspace_id is null;
