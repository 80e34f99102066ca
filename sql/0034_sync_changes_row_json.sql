-- Row images are only read back whole (a merge's base version, typed again through jsonb_populate_record):
-- `json` stores the feed's text as it is, where `jsonb` would parse and rebuild every image at the feed's rate.
alter table sync.changes alter column row type json using row::json;
