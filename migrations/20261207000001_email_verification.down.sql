drop table email_verification_tokens;
