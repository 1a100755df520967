-- the event store: postgres-es' own tables, plus columns the relay and
-- audit tooling need. postgres-es names its columns in every statement, so
-- the defaulted extra columns are invisible to it.
create table events
(
    aggregate_type text                         not null,
    aggregate_id   text                         not null,
    sequence       bigint check (sequence >= 0) not null,
    event_type     text                         not null,
    event_version  text                         not null,
    payload        json                         not null,
    metadata       json                         not null,
    -- the event's unique id: the Nats-Msg-Id and CloudEvents id downstream
    event_id       uuid                         not null default gen_random_uuid(),
    -- assigned at insert; transactions commit out of order, so readers must
    -- not treat it alone as a commit-order cursor (see tx_id)
    position       bigint generated always as identity,
    -- the writing transaction: rows are read in (tx_id, position) order and
    -- only once tx_id is older than every running transaction's
    tx_id          xid8                         not null default pg_current_xact_id(),
    recorded_at    timestamptz                  not null default now(),
    primary key (aggregate_type, aggregate_id, sequence)
);

create unique index events_event_id_key on events (event_id);
create unique index events_position_key on events (position);
create index events_commit_order_idx on events (tx_id, position);

create table snapshots
(
    aggregate_type   text                                 not null,
    aggregate_id     text                                 not null,
    last_sequence    bigint check (last_sequence >= 0)    not null,
    current_snapshot bigint check (current_snapshot >= 0) not null,
    payload          json                                 not null,
    primary key (aggregate_type, aggregate_id, last_sequence)
);

-- where each relay has published up to, in commit order; written only after
-- JetStream acknowledged everything up to it
create table relay_checkpoints
(
    relay_name    text primary key,
    last_tx_id    xid8        not null,
    last_position bigint      not null,
    updated_at    timestamptz not null default now()
);
