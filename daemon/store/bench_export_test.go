package store

import (
	"context"
	"fmt"
	"time"
)

// FillMessages inserts n synthetic messages for server serverID with one
// INSERT ... SELECT over a recursive sequence (fast on both databases):
// one every 100 ms ending at end (a million span about 28 hours), 1 in 100 held, the rest spread over
// Sent, SoftFail, HardFail and Pending; recipients over 1000 addresses at
// 50 domains; and a delivery row for every tenth message. For benchmarks.
func (s *Store) FillMessages(ctx context.Context, serverID int64, n int, end time.Time) error {
	base := end.UnixMicro() - int64(n)*100000
	q := `INSERT INTO messages (server_id, token, scope, rcpt_to, mail_from, subject, status, held, size, timestamp)
		WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
		SELECT CAST(? AS BIGINT), 'bench-' || CAST(i AS TEXT), 'outgoing', 'user' || CAST(i % 1000 AS TEXT) || '@dest' || CAST(i % 50 AS TEXT) || '.example',
			'sender@acme.example', 'Invoice ' || CAST(i AS TEXT),
			CASE WHEN i % 100 = 0 THEN 'Held' WHEN i % 10 = 1 THEN 'SoftFail' WHEN i % 10 = 2 THEN 'HardFail'
				WHEN i % 10 = 3 THEN 'Pending' ELSE 'Sent' END,
			i % 100 = 0, 1024, CAST(? AS BIGINT) + CAST(i AS BIGINT) * 100000
		FROM seq`
	if _, err := s.exec(ctx, q, n, serverID, base); err != nil {
		return fmt.Errorf("fill messages: %w", err)
	}
	if _, err := s.exec(ctx, `INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, time, timestamp)
		SELECT id, status, '', '', ?, '', 0, timestamp + 500000 FROM messages WHERE server_id = ? AND id % 10 = 0`, false, serverID); err != nil {
		return fmt.Errorf("fill deliveries: %w", err)
	}
	if s.dialect.driver == Postgres {
		if _, err := s.exec(ctx, `ANALYZE messages`); err != nil {
			return err
		}
		_, err := s.exec(ctx, `ANALYZE deliveries`)
		return err
	}
	_, err := s.exec(ctx, `ANALYZE`)
	return err
}
