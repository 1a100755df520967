drop table companies;
drop table projection_versions;
