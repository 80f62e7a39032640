-- Open and click tracking. links: one row per (message, URL), made before
-- the message is first sent and re-used by retries, so a retry sends the
-- same rewritten bytes (Postal makes one row per occurrence). loads and
-- clicks: one row per tracking request. messages.parsed/tracked_*: Postal's
-- record that the message was rewritten; loaded (first load) and clicked
-- (last click). track_domains.verified: the operator vouches for DNS
-- managed elsewhere, so tracking is on whatever the CNAME check says.

ALTER TABLE track_domains ADD COLUMN verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN parsed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN tracked_links INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN tracked_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN loaded BIGINT;
ALTER TABLE messages ADD COLUMN clicked BIGINT;

CREATE TABLE links (
  id {{id}},
  message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  token TEXT NOT NULL UNIQUE,
  hash TEXT NOT NULL,
  url TEXT NOT NULL,
  timestamp BIGINT NOT NULL,
  UNIQUE (message_id, hash)
);

CREATE TABLE loads (
  id {{id}},
  message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  ip_address TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  timestamp BIGINT NOT NULL
);
CREATE INDEX loads_by_message ON loads (message_id, timestamp);

CREATE TABLE clicks (
  id {{id}},
  message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  link_id BIGINT NOT NULL REFERENCES links(id) ON DELETE CASCADE,
  ip_address TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  timestamp BIGINT NOT NULL
);
CREATE INDEX clicks_by_message ON clicks (message_id, timestamp);
