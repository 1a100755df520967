drop table relay_checkpoints;
drop trigger events_appended on events;
drop function notify_events_appended();
drop table snapshots;
drop table events;
