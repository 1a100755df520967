drop trigger events_mark_idempotency_key on events;
drop function mark_idempotency_key_executed();
drop index idempotency_keys_digest_key;
alter table idempotency_keys
    drop column claim_id,
    drop column effect,
    drop column executed_at,
    drop column digest;
