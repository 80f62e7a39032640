-- Every webhook attempt, successful or not (Postal's per-server
-- webhook_requests history): what was sent where, the answer and whether
-- the request will be retried. Pruned after webhooks.log_retention_days.
-- result: ok, http_error, redirect, timeout, dns, connect, tls, invalid, dead.
-- status_code: the HTTP status, or Postal's -1 (timeout), -2 (socket), -3 (TLS).
CREATE TABLE webhook_attempts (
  id {{id}},
  request_uuid TEXT NOT NULL,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  webhook_id BIGINT,
  event TEXT NOT NULL,
  url TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  status_code INTEGER NOT NULL,
  result TEXT NOT NULL,
  duration_us BIGINT NOT NULL,
  response TEXT NOT NULL,
  payload TEXT NOT NULL,
  will_retry BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_server ON webhook_attempts (server_id, id);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (created_at);
