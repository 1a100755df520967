drop table projection_errors;
