-- Operator console (postalctl tui, postalctl message ls, postalctl stats).
-- The message search pages by id, newest first (keyset: id < cursor), so each
-- filter the console offers without a server has an index ending in id, and
-- the per-server filters share (server_id, status, id), whose prefix also
-- serves "every status of one server". Statistics count messages and
-- deliveries by timestamp.

CREATE INDEX IF NOT EXISTS messages_by_server_status_id ON messages (server_id, status, id);
CREATE INDEX IF NOT EXISTS messages_by_status_id ON messages (status, id);
CREATE INDEX IF NOT EXISTS messages_by_rcpt_id ON messages (rcpt_to, id);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (timestamp);
CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (timestamp);
