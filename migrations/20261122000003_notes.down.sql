drop table deleted_companies;
drop table notes;
