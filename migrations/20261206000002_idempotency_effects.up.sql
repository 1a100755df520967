-- an idempotency key learns that its command ran in the same transaction
-- as the command's events: the request layer tags the events' metadata
-- with the key's digest, and this trigger marks the key. A claim whose
-- request died (process killed, database gone, handler dropped) can then
-- be taken over safely: unmarked, the command never ran and runs again;
-- marked, it ran, and only its response was lost.
alter table idempotency_keys
    -- sha256(principal || '\n' || key), as the events' metadata names it
    add column digest      bytea,
    add column executed_at timestamptz,
    add column effect      jsonb,
    -- who holds the claim: a request's late release or completion must
    -- not touch a claim a retry has taken over since
    add column claim_id    uuid;
create unique index idempotency_keys_digest_key on idempotency_keys (digest);

create function mark_idempotency_key_executed() returns trigger
    language plpgsql as
$$
begin
    update idempotency_keys
    set executed_at = coalesce(executed_at, now()),
        effect      = coalesce(effect, jsonb_build_object(
                'aggregate_type', new.aggregate_type,
                'aggregate_id', new.aggregate_id,
                'version', new.sequence))
    where digest = decode(new.metadata ->> 'idempotency', 'hex');
    return null;
end;
$$;

create trigger events_mark_idempotency_key
    after insert on events
    for each row
    when ((new.metadata ->> 'idempotency') is not null)
execute function mark_idempotency_key_executed();
