-- Verification tokens, minted by the mailer when it sends the mail that
-- carries one: only a hash is kept, each is used once and expires.
create table email_verification_tokens
(
    token_hash   bytea primary key,
    user_id      uuid        not null,
    email        text        not null,
    -- The `user.verification_requested` event it answers: a redelivered
    -- event whose mail went out sends nothing more.
    source_event uuid        not null unique,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    sent_at      timestamptz,
    used_at      timestamptz
);
