-- no-transaction
drop index concurrently if exists events_unsealed_idx;
