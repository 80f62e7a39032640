-- Per-server statistics, as Postal's stats_hourly/daily/monthly tables: one
-- row per server, period ('hour', 'day' or 'month', UTC) and period start
-- (unix microseconds). Written in the same transaction as what they count
-- (intake's commit, the completer's outcome commit), one upsert per batch.
-- incoming/outgoing: messages stored, by scope (bounces generated count as
-- outgoing); held: messages held (at acceptance or by an outcome); bounces:
-- original messages marked Bounced by a received DSN; sent, soft_fail,
-- hard_fail: delivery outcomes. spam is kept for Postal's shape and, as in
-- Postal, never incremented.
CREATE TABLE server_statistics (
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  period TEXT NOT NULL,
  period_start BIGINT NOT NULL,
  incoming BIGINT NOT NULL DEFAULT 0,
  outgoing BIGINT NOT NULL DEFAULT 0,
  spam BIGINT NOT NULL DEFAULT 0,
  bounces BIGINT NOT NULL DEFAULT 0,
  held BIGINT NOT NULL DEFAULT 0,
  sent BIGINT NOT NULL DEFAULT 0,
  soft_fail BIGINT NOT NULL DEFAULT 0,
  hard_fail BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (server_id, period, period_start)
);
CREATE INDEX server_statistics_by_period ON server_statistics (period, period_start);

-- The message a webhook request is about (NULL for server events: DNS
-- errors, send limits), copied into its attempt log, so the console shows
-- a message's webhook requests.
ALTER TABLE webhook_requests ADD COLUMN message_id BIGINT;
ALTER TABLE webhook_attempts ADD COLUMN message_id BIGINT;
CREATE INDEX webhook_requests_by_message ON webhook_requests (message_id);
CREATE INDEX webhook_attempts_by_message ON webhook_attempts (message_id, id);
