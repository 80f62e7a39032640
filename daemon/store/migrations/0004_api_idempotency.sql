-- HTTP API Idempotency-Key records: one row per (server, key) for 24 hours.
-- A row is reserved (done false) before the request's messages are stored;
-- the transaction that stores them sets raw_message_id and done, so a retry
-- either replays the stored messages or finds the key still in progress.
-- request_hash (SHA-256 of endpoint and body) refuses a key reused for a
-- different request.

CREATE TABLE api_idempotency (
  id {{id}},
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  idem_key TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  raw_message_id BIGINT REFERENCES raw_messages(id) ON DELETE SET NULL,
  done BOOLEAN NOT NULL DEFAULT FALSE,
  created_at BIGINT NOT NULL,
  UNIQUE (server_id, idem_key)
);
CREATE INDEX api_idempotency_by_time ON api_idempotency (created_at);
