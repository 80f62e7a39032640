-- Spam and virus inspection. spam_checks: Postal's table, one row per rule a
-- spam scanner matched (code, score, description). messages.inspection_skipped:
-- why a message was delivered without a complete inspection (too large for
-- inspection.max_message_size, or a scanner down under
-- inspection.when_unavailable: accept); NULL when it was inspected in full
-- or not at all.

CREATE TABLE spam_checks (
  id {{id}},
  message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  code TEXT NOT NULL,
  score {{float}} NOT NULL,
  description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX spam_checks_by_message ON spam_checks (message_id);

ALTER TABLE messages ADD COLUMN inspection_skipped TEXT;
