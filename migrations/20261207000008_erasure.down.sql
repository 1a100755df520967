drop index if exists users_erase_after_idx;
alter table users drop column if exists erase_after;
drop index if exists privacy_keys_lookup_idx;
alter table privacy_keys drop column if exists lookup;
drop index if exists notes_content_by_idx;
alter table notes drop column if exists content_by;
drop index if exists api_keys_created_by_idx;
drop index if exists privacy_erasures_on_behalf_of_idx;
alter table privacy_erasures drop column if exists on_behalf_of;
