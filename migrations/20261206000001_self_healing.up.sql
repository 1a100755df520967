-- the derived world heals itself: the relay's leadership lease, what it has
-- proven the stream holds, the repairs it made, and events a restored store
-- no longer has.

-- this database's identity, written into the stream's metadata so a relay
-- pointed at another deployment's stream refuses to touch it; a backup
-- restored from pg_dump keeps it (it is data, not the cluster's id)
create table store_identity
(
    singleton  boolean primary key default true check (singleton),
    store_id   uuid        not null default gen_random_uuid(),
    created_at timestamptz not null default now()
);
insert into store_identity default values;

-- singleton workers (the relay) lead by lease: the holder renews it as it
-- makes progress, and every write it makes as leader names its fencing
-- token, so a leader that stalled and woke up after losing the lease
-- cannot write
create table leases
(
    name       text primary key,
    holder     text        not null,
    token      bigint      not null,
    expires_at timestamptz not null,
    renewed_at timestamptz not null default now()
);

-- the fence every leader's write names: true while `holder` still holds
-- lease `name` under `token` (nobody has taken it over since)
create function lease_held(name text, holder text, token bigint) returns boolean
    language sql
    stable
as
$$
select exists (select 1 from leases l
               where l.name = lease_held.name and l.holder = lease_held.holder
                 and l.token = lease_held.token)
$$;

-- the verified frontier: every event up to (verified_tx_id,
-- verified_position) is in the stream instance created at stream_created,
-- which the relay has read (or seen acknowledged) through verified_seq,
-- where the message verified_event_id sits
alter table relay_checkpoints
    add column fencing_token      bigint      not null default 0,
    -- bumped by every save: a leader whose row changed under it (the store
    -- was restored from a backup) starts over from what the row says
    add column saves              bigint      not null default 0,
    add column stream_created     timestamptz,
    add column epoch              bigint      not null default 1,
    add column verified_seq       bigint      not null default 0,
    add column verified_event_id  uuid,
    add column verified_tx_id     xid8        not null default '0',
    add column verified_position  bigint      not null default 0,
    add column repaired_up_to_seq bigint      not null default 0,
    add column first_seq_seen     bigint      not null default 0,
    add column deleted_seen       bigint      not null default 0,
    add column verified_at        timestamptz,
    -- when the checkpoint last moved (readiness: a relay with events
    -- waiting that has not moved for a while is stalled)
    add column progressed_at      timestamptz not null default now(),
    add column diverged           text,
    add column refill_requested   boolean     not null default false;

-- points the frontier passed, one per thousand stream sequences, to step
-- back to when the stream loses messages behind the frontier
create table relay_stream_marks
(
    relay_name text   not null,
    seq        bigint not null,
    event_id   uuid   not null,
    tx_id      xid8   not null,
    position   bigint not null,
    primary key (relay_name, seq)
);

-- events the relay republished above its frontier, checked until the
-- frontier passes them: a repair lost again is repaired again
create table relay_pending_repairs
(
    relay_name text   not null,
    seq        bigint not null,
    event_id   uuid   not null,
    primary key (relay_name, seq)
);

-- deleted stream sequences the relay has already repaired (JetStream
-- keeps reporting them)
create table relay_deleted_handled
(
    relay_name text   not null,
    seq        bigint not null,
    primary key (relay_name, seq)
);

-- versions a projection found missing from the stream and filled from the
-- store (a hole it met before the relay repaired it, or a redelivery out
-- of order), for `vcintel projections status`
create table projection_gap_fills
(
    projection     text primary key,
    fills          bigint      not null,
    events         bigint      not null,
    last_aggregate text        not null,
    last_at        timestamptz not null
);

-- every divergence the relay found and what it did about it
create table relay_repairs
(
    id          bigint generated always as identity primary key,
    relay_name  text        not null,
    occurred_at timestamptz not null default now(),
    kind        text        not null,
    detail      text        not null,
    republished bigint      not null default 0
);
create index relay_repairs_recent_idx on relay_repairs (relay_name, id desc);

-- messages the stream held that the event store does not (it was restored
-- from an older backup): acknowledged commands the restore took back, kept
-- for the operator before the stream is refilled from the store
create table stream_orphans
(
    epoch      bigint      not null,
    stream_seq bigint      not null,
    event_id   uuid        not null,
    subject    text        not null,
    message    jsonb       not null,
    found_at   timestamptz not null default now(),
    primary key (epoch, stream_seq)
);
