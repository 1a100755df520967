-- crypto-shredding (infra/src/privacy.rs, docs/privacy.md): one data key
-- per subject (a person), wrapped under the master key of
-- `master_version`. Erasing a subject deletes its key, which makes every
-- value sealed under it unreadable wherever it was copied (events,
-- snapshots, the stream, backups); `privacy_erasures` remembers who was
-- erased, so a restore of an older backup erases them again.
create table privacy_keys
(
    subject        text primary key,
    key_id         uuid        not null,
    wrapped        bytea       not null,
    master_version integer     not null,
    created_at     timestamptz not null default now()
);
-- a rotation re-wraps the keys of older master versions, batch by batch
create index privacy_keys_master_version_idx on privacy_keys (master_version);

create table privacy_erasures
(
    subject   text primary key,
    erased_at timestamptz not null default now()
);
