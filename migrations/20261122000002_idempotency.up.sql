-- the first response to each (caller, Idempotency-Key), replayed to retries;
-- status is null while the first request is still running
create table idempotency_keys
(
    principal        text        not null,
    key              text        not null,
    request_hash     bytea       not null,
    status           smallint,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz not null default now(),
    completed_at     timestamptz,
    primary key (principal, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);
