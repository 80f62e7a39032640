-- The rest of Postal's admin model: routes and their endpoints, webhooks
-- and their requests, IP pools, track domains and suppression lists.

ALTER TABLE servers ADD COLUMN ip_pool_id BIGINT;

CREATE TABLE http_endpoints (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  url TEXT NOT NULL,
  encoding TEXT NOT NULL DEFAULT 'BodyAsJSON',
  format TEXT NOT NULL DEFAULT 'Hash',
  strip_replies BOOLEAN NOT NULL DEFAULT FALSE,
  include_attachments BOOLEAN NOT NULL DEFAULT TRUE,
  timeout INTEGER NOT NULL DEFAULT 5,
  error TEXT,
  disabled_until BIGINT,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE smtp_endpoints (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  hostname TEXT NOT NULL,
  port INTEGER NOT NULL DEFAULT 25,
  ssl_mode TEXT NOT NULL DEFAULT 'Auto',
  error TEXT,
  disabled_until BIGINT,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE address_endpoints (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- mode: Endpoint, Accept, Hold, Bounce, Reject; spam_mode: Mark, Quarantine, Fail.
-- endpoint_type: HTTPEndpoint, SMTPEndpoint, AddressEndpoint (NULL unless mode is Endpoint).
-- name is the local part or '*' for any; token addresses the route at dns.route_domain.
CREATE TABLE routes (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  domain_id BIGINT REFERENCES domains(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token TEXT NOT NULL UNIQUE,
  mode TEXT NOT NULL DEFAULT 'Endpoint',
  spam_mode TEXT NOT NULL DEFAULT 'Mark',
  endpoint_type TEXT,
  endpoint_id BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (domain_id, name)
);
CREATE INDEX routes_by_server ON routes (server_id);

CREATE TABLE webhooks (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  url TEXT NOT NULL,
  all_events BOOLEAN NOT NULL DEFAULT FALSE,
  enabled BOOLEAN NOT NULL DEFAULT TRUE,
  sign BOOLEAN NOT NULL DEFAULT TRUE,
  last_used_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_by_server ON webhooks (server_id);

CREATE TABLE webhook_events (
  id {{id}},
  webhook_id BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  event TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (webhook_id, event)
);

-- One row per webhook call to make; worked through the `webhooks` stream
-- exactly like queued_messages (attempts, retry_after, lock).
CREATE TABLE webhook_requests (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  webhook_id BIGINT REFERENCES webhooks(id) ON DELETE CASCADE,
  url TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  retry_after BIGINT NOT NULL,
  error TEXT,
  locked_by TEXT,
  locked_until BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX webhook_requests_by_due ON webhook_requests (retry_after);

CREATE TABLE ip_pools (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL UNIQUE,
  is_default BOOLEAN NOT NULL DEFAULT FALSE,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE ip_addresses (
  id {{id}},
  ip_pool_id BIGINT NOT NULL REFERENCES ip_pools(id) ON DELETE CASCADE,
  ipv4 TEXT NOT NULL,
  ipv6 TEXT,
  hostname TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 100,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (ipv4)
);

-- A rule sends mail matching from_text/to_text (newline-separated
-- addresses or domains) through ip_pool_id; owned by a server (server_id)
-- or, when server_id is NULL, by an organisation.
CREATE TABLE ip_pool_rules (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  organization_id BIGINT REFERENCES organizations(id) ON DELETE CASCADE,
  server_id BIGINT REFERENCES servers(id) ON DELETE CASCADE,
  ip_pool_id BIGINT NOT NULL REFERENCES ip_pools(id) ON DELETE CASCADE,
  from_text TEXT,
  to_text TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE track_domains (
  id {{id}},
  uuid TEXT NOT NULL UNIQUE,
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  domain_id BIGINT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  ssl_enabled BOOLEAN NOT NULL DEFAULT TRUE,
  track_clicks BOOLEAN NOT NULL DEFAULT TRUE,
  track_loads BOOLEAN NOT NULL DEFAULT TRUE,
  excluded_click_domains TEXT,
  dns_status TEXT,
  dns_error TEXT,
  dns_checked_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (domain_id, name)
);

-- Postal keeps one suppression list per server; type is 'recipient'.
CREATE TABLE suppressions (
  id {{id}},
  server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  type TEXT NOT NULL DEFAULT 'recipient',
  address TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  timestamp BIGINT NOT NULL,
  keep_until BIGINT NOT NULL,
  UNIQUE (server_id, type, address)
);
CREATE INDEX suppressions_by_expiry ON suppressions (keep_until);
