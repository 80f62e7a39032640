-- Send limits: when a server's outgoing volume over the last 60 minutes
-- crossed 90 % (approaching) and 100 % (exceeded) of its send_limit, so
-- that each crossing fires its webhook event once. Cleared when the volume
-- falls back below 90 %.

ALTER TABLE servers ADD COLUMN send_limit_approaching_at BIGINT;
ALTER TABLE servers ADD COLUMN send_limit_exceeded_at BIGINT;
