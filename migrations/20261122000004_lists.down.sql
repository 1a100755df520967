drop table list_items;
drop table lists;
