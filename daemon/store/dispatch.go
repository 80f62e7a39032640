package store

import (
	"context"
	"fmt"
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
