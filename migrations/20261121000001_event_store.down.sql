drop table relay_checkpoints;
drop table snapshots;
drop table events;
