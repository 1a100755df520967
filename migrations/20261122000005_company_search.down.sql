drop index companies_location_idx;
drop index companies_stage_idx;
drop index companies_sector_idx;
drop index companies_score_idx;
drop index companies_name_idx;
drop index companies_search_idx;
alter table companies drop column search;
alter table companies drop column score;
