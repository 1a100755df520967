drop table privacy_erasures;
drop table privacy_keys;
