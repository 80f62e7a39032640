-- The installation's identity: one row (singleton = 1) holding a random id,
-- written by the first process that asks for it (store.InstallationID).
-- postald records the id in Redis under redis.key_prefix and refuses a
-- prefix that another installation's database has claimed: two
-- installations on one prefix would consume each other's stream entries.
CREATE TABLE installation (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
