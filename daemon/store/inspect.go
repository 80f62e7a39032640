package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Read-only queries for operators (postalctl message, queue and the TUI).

// ServerMessages lists the messages of server serverID, newest first, at
// most limit (limit <= 0: 100). A non-empty status keeps only messages with
// that status. It returns a wrapped error when the query fails.
func (s *Store) ServerMessages(ctx context.Context, serverID int64, status string, limit int) ([]*Message, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + messageColumns + ` FROM messages WHERE server_id = ?`
	args := []any{serverID}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages of server %d: %w", serverID, err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages of server %d: %w", serverID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages of server %d: %w", serverID, err)
	}
	return out, nil
}

// QueuedForMessage returns the queued row of message messageID (a message
// has at most one). A message that is not queued wraps ErrNotFound; a failed
// query returns a wrapped error.
func (s *Store) QueuedForMessage(ctx context.Context, messageID int64) (*QueuedMessage, error) {
	q, err := scanQueued(s.queryRow(ctx, `SELECT `+queuedColumns+` FROM queued_messages WHERE message_id = ?`, messageID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("queued row of message %d: %w", messageID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queued row of message %d: %w", messageID, err)
	}
	return q, nil
}
