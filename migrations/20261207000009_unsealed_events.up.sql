-- no-transaction
-- The events written before personal values were sealed (v1 of the types
-- that carry them): `vcintel privacy migrate` seals them in place, along
-- this index, which is empty once it has run. Built concurrently: the
-- events table keeps taking writes meanwhile.
create index concurrently if not exists events_unsealed_idx on events (position)
    where event_version = '1'
      and event_type in ('user.registered', 'user.verification_requested',
                         'user.email_verified', 'workspace.member_added',
                         'workspace.member_invited', 'workspace.invitation_cancelled',
                         'workspace.invitation_declined', 'note.added', 'note.edited');
