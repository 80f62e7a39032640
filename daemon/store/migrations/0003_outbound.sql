-- Outgoing delivery: a queued message released by hand (postalctl message
-- release) skips the hold checks, as Postal's queued_messages.manual does.

ALTER TABLE queued_messages ADD COLUMN manual BOOLEAN NOT NULL DEFAULT FALSE;
