package store

import (
	"context"
	"fmt"
)

// CountRows counts the rows of table, for tests that check nothing was
// left behind.
func (s *Store) CountRows(ctx context.Context, table string) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}
