-- Erasure (docs/privacy.md). An invitee's data key remembers a keyed
-- digest of the address it was made for, so erasing a person finds every
-- invitation sealed for their address without storing the address.
alter table privacy_keys add column lookup bytea;
create index privacy_keys_lookup_idx on privacy_keys (lookup) where lookup is not null;

-- The erasures waiting for their grace period to end, read by the
-- scheduler along the index (kept by the identity projection).
alter table users add column erase_after timestamptz;
create index users_erase_after_idx on users (erase_after) where erase_after is not null;

-- Whose text a note holds now (its writer, or whoever edited it last): an
-- erasure masks the notes whose text is the person's, as reading the
-- events does once their key is gone. Filled from the events once.
alter table notes add column content_by uuid;
update notes n
set content_by = coalesce(
        (select (e.payload -> 'note.edited' ->> 'edited_by')::uuid
         from events e
         where e.aggregate_type = 'note' and e.aggregate_id = n.id::text
           and e.event_type = 'note.edited'
         order by e.sequence desc
         limit 1),
        n.added_by);
alter table notes alter column content_by set not null;
create index notes_content_by_idx on notes (content_by);

-- The security log no longer copies an invitee's address into an
-- invitation's entry (the invitation id says which); older entries lose it.
update security_events
set detail = detail - 'email'
where kind = 'member.invited' and detail ? 'email';

-- The invitee subjects erased with a person, so an erasure cut short is
-- finished with the same invitations.
alter table privacy_erasures add column on_behalf_of text;
create index privacy_erasures_on_behalf_of_idx on privacy_erasures (on_behalf_of)
    where on_behalf_of is not null;

-- An erased person's API keys are revoked.
create index api_keys_created_by_idx on api_keys (created_by) where revoked_at is null;

