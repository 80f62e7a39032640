package store

import (
	"context"
	"time"
)

// Test-only writers for rows whose admin methods belong to other features.

// AddSuppressionForTest inserts a suppression list entry.
func (s *Store) AddSuppressionForTest(ctx context.Context, serverID int64, address string, keepUntil time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO suppressions (server_id, type, address, reason, timestamp, keep_until)
		VALUES (?, 'recipient', ?, 'test', ?, ?)`, serverID, address, s.now().UnixMicro(), keepUntil.UnixMicro())
	return err
}

// SetRetentionForTest sets a server's retention settings.
func (s *Store) SetRetentionForTest(ctx context.Context, serverID int64, messageDays, rawDays, rawSizeMB int) error {
	_, err := s.exec(ctx, `UPDATE servers SET message_retention_days = ?, raw_message_retention_days = ?,
		raw_message_retention_size = ? WHERE id = ?`, messageDays, rawDays, rawSizeMB, serverID)
	return err
}

// SuppressionCountForTest counts a server's suppression entries.
func (s *Store) SuppressionCountForTest(ctx context.Context, serverID int64) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT count(*) FROM suppressions WHERE server_id = ?`, serverID).Scan(&n)
	return n, err
}
