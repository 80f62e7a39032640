-- Postal's additional route endpoints: a route in mode Endpoint delivers
-- each incoming message to its primary endpoint and, as one more message
-- per row here, to each additional endpoint (endpoint_type is one of
-- HTTPEndpoint, SMTPEndpoint, AddressEndpoint; endpoint_id points into that
-- type's table). A message created for an additional endpoint names it in
-- messages.endpoint_type / endpoint_id; a message without one goes to its
-- route's primary endpoint.
CREATE TABLE route_additional_endpoints (
  id {{id}},
  route_id BIGINT NOT NULL REFERENCES routes(id) ON DELETE CASCADE,
  endpoint_type TEXT NOT NULL,
  endpoint_id BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (route_id, endpoint_type, endpoint_id)
);
CREATE INDEX route_additional_endpoints_by_endpoint ON route_additional_endpoints (endpoint_type, endpoint_id);

ALTER TABLE messages ADD COLUMN endpoint_type TEXT;
ALTER TABLE messages ADD COLUMN endpoint_id BIGINT;
