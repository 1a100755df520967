drop table company_tombstones;
drop table notes;
