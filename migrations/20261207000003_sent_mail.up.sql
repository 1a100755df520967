-- Mail the mailer sent for an event other than a verification request
-- (those are tracked with their token): one row per event, so a
-- redelivered event sends no second mail once the first went out.
create table sent_mail
(
    source_event uuid primary key,
    kind         text        not null,
    sent_at      timestamptz not null default now()
);
