-- no-transaction
-- An erasure deletes a person's verification tokens (they keep the
-- address) along this index instead of scanning the table.
create index concurrently if not exists email_verification_tokens_user_idx
    on email_verification_tokens (user_id);
