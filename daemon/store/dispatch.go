package store

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// QueuedByIDs loads queued messages by id, in id order; ids that are gone
// are left out. Workers use it to learn why a dispatch entry's row could
// not be claimed (gone, locked by another worker, or not due yet) and so
// whether the entry may be dropped or must be kept for later. It returns
// a wrapped error when the query fails.
func (s *Store) QueuedByIDs(ctx context.Context, ids []int64) ([]*QueuedMessage, error) {
	var out []*QueuedMessage
	for start := 0; start < len(ids); start += maintenancePage {
		chunk := ids[start:min(start+maintenancePage, len(ids))]
		rows, err := s.query(ctx, `SELECT `+queuedColumns+` FROM queued_messages WHERE id IN (`+placeholders(len(chunk))+`) ORDER BY id`,
			int64Args(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("load queued messages: %w", err)
		}
		qs, err := collectQueued(rows)
		if err != nil {
			return nil, fmt.Errorf("load queued messages: %w", err)
		}
		out = append(out, qs...)
	}
	return out, nil
}

// DueWebhookRequests lists the ids of webhook requests that are due at now
// and not locked (or whose lock expired), with id > afterID, in id order, at
// most limit: the reconciliation scan that re-dispatches webhook requests
// Redis lost. It returns a wrapped error when the query fails.
func (s *Store) DueWebhookRequests(ctx context.Context, now time.Time, afterID int64, limit int) ([]int64, error) {
	n := now.UnixMicro()
	rows, err := s.query(ctx, `SELECT id FROM webhook_requests
		WHERE id > ? AND retry_after <= ? AND (locked_by IS NULL OR locked_until < ?) ORDER BY id LIMIT ?`, afterID, n, n, limit)
	if err != nil {
		return nil, fmt.Errorf("list due webhook requests: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list due webhook requests: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due webhook requests: %w", err)
	}
	return out, nil
}

// ReleaseLocksOf unlocks every queued message whose lock owner starts with
// prefix (the lock owners of one worker process, which is known to be dead)
// and returns the released rows, so their work is taken over at once rather
// than after the lock expires. An empty prefix is refused. It returns a
// wrapped error when the update fails.
func (s *Store) ReleaseLocksOf(ctx context.Context, prefix string) ([]*QueuedMessage, error) {
	if prefix == "" {
		return nil, fmt.Errorf("release locks: empty owner prefix")
	}
	var out []*QueuedMessage
	err := s.inTx(ctx, func(t tx) error {
		rows, err := t.query(ctx, `UPDATE queued_messages SET locked_by = NULL, locked_until = NULL, updated_at = ?
			WHERE locked_by IS NOT NULL AND substr(locked_by, 1, ?) = ? RETURNING `+queuedColumns,
			s.now().UnixMicro(), utf8.RuneCountInString(prefix), prefix)
		if err != nil {
			return err
		}
		out, err = collectQueued(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("release locks of %s: %w", prefix, err)
	}
	return out, nil
}
