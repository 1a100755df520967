drop table projection_rebuilds;
