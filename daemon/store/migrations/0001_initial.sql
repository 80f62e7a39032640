-- The mail spine: organisations, servers, domains, credentials, raw message
-- bodies, messages (one per recipient), deliveries and queued messages.
-- Times are integer microseconds since the Unix epoch.

CREATE TABLE organizations (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  permalink TEXT NOT NULL UNIQUE,
  time_zone TEXT NOT NULL DEFAULT 'UTC',
  suspended_at BIGINT,
  suspension_reason TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE servers (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  organization_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  permalink TEXT NOT NULL,
  mode TEXT NOT NULL DEFAULT 'Live',
  token TEXT NOT NULL UNIQUE,
  send_limit BIGINT,
  message_retention_days INTEGER NOT NULL DEFAULT 60,
  raw_message_retention_days INTEGER NOT NULL DEFAULT 30,
  raw_message_retention_size INTEGER NOT NULL DEFAULT 2048,
  spam_threshold {{float}} NOT NULL DEFAULT 5,
  spam_failure_threshold {{float}} NOT NULL DEFAULT 20,
  outbound_spam_threshold {{float}},
  privacy_mode BOOLEAN NOT NULL DEFAULT FALSE,
  allow_sender BOOLEAN NOT NULL DEFAULT FALSE,
  log_smtp_data BOOLEAN NOT NULL DEFAULT FALSE,
  require_tls BOOLEAN NOT NULL DEFAULT FALSE,
  suspended_at BIGINT,
  suspension_reason TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (organization_id, permalink)
);

CREATE TABLE domains (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  verification_token TEXT NOT NULL,
  verification_method TEXT NOT NULL DEFAULT 'DNS',
  verified_at BIGINT,
  dkim_private_key TEXT NOT NULL,
  dkim_identifier_string TEXT NOT NULL,
  outgoing BOOLEAN NOT NULL DEFAULT TRUE,
  incoming BOOLEAN NOT NULL DEFAULT TRUE,
  use_for_any BOOLEAN NOT NULL DEFAULT FALSE,
  spf_status TEXT,
  spf_error TEXT,
  dkim_status TEXT,
  dkim_error TEXT,
  mx_status TEXT,
  mx_error TEXT,
  return_path_status TEXT,
  return_path_error TEXT,
  dns_checked_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (server_id, name)
);
CREATE INDEX domains_by_name ON domains (name);

CREATE TABLE credentials (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  name TEXT NOT NULL,
  key_hash TEXT UNIQUE,
  key_hint TEXT NOT NULL DEFAULT '',
  cidr TEXT,
  hold BOOLEAN NOT NULL DEFAULT FALSE,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX credentials_by_server ON credentials (server_id, type);

CREATE TABLE raw_messages (
  id {{id}},
  data {{blob}} NOT NULL,
  size BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE messages (
  id {{id}},
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  token TEXT NOT NULL UNIQUE,
  scope TEXT NOT NULL,
  rcpt_to TEXT NOT NULL,
  mail_from TEXT NOT NULL,
  subject TEXT NOT NULL DEFAULT '',
  message_id TEXT NOT NULL DEFAULT '',
  tag TEXT,
  status TEXT NOT NULL,
  held BOOLEAN NOT NULL DEFAULT FALSE,
  hold_expiry BIGINT,
  bounce BOOLEAN NOT NULL DEFAULT FALSE,
  bounce_for_id BIGINT,
  domain_id BIGINT,
  credential_id BIGINT,
  route_id BIGINT,
  raw_message_id BIGINT REFERENCES raw_messages(id) ON DELETE SET NULL,
  size BIGINT NOT NULL,
  received_with_ssl BOOLEAN NOT NULL DEFAULT FALSE,
  inspected BOOLEAN NOT NULL DEFAULT FALSE,
  spam BOOLEAN NOT NULL DEFAULT FALSE,
  spam_score {{float}} NOT NULL DEFAULT 0,
  threat BOOLEAN NOT NULL DEFAULT FALSE,
  threat_details TEXT,
  last_delivery_attempt BIGINT,
  details TEXT,
  timestamp BIGINT NOT NULL
);
CREATE INDEX messages_by_server_time ON messages (server_id, timestamp);
CREATE INDEX messages_by_message_id ON messages (server_id, message_id);
CREATE INDEX messages_by_raw ON messages (raw_message_id);

CREATE TABLE deliveries (
  id {{id}},
  message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '',
  output TEXT NOT NULL DEFAULT '',
  sent_with_ssl BOOLEAN NOT NULL DEFAULT FALSE,
  log_id TEXT NOT NULL DEFAULT '',
  time {{float}},
  timestamp BIGINT NOT NULL
);
CREATE INDEX deliveries_by_message ON deliveries (message_id);

CREATE TABLE queued_messages (
  id {{id}},
  message_id BIGINT NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
  server_id BIGINT NOT NULL,
  scope TEXT NOT NULL,
  domain TEXT NOT NULL,
  ip_address_id BIGINT,
  attempts INTEGER NOT NULL DEFAULT 0,
  retry_after BIGINT NOT NULL,
  locked_by TEXT,
  locked_until BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX queued_by_due ON queued_messages (retry_after);
CREATE INDEX queued_by_domain ON queued_messages (scope, domain, retry_after);
