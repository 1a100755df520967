-- no-transaction
drop index concurrently if exists email_verification_tokens_user_idx;
