package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The Suppression type, AddSuppressions and RemoveSuppression live in
// outbound.go; this file adds the listings postalctl needs.

const suppressionColumns = `id, server_id, type, address, reason, timestamp, keep_until`

func scanSuppression(sc interface{ Scan(...any) error }) (*Suppression, error) {
	var x Suppression
	var ts, keep int64
	if err := sc.Scan(&x.ID, &x.ServerID, &x.Type, &x.Address, &x.Reason, &ts, &keep); err != nil {
		return nil, err
	}
	x.Timestamp, x.KeepUntil = time.UnixMicro(ts), time.UnixMicro(keep)
	return &x, nil
}

// ServerSuppressions lists a server's suppression entries by address,
// expired ones included until the prune task removes them.
func (s *Store) ServerSuppressions(ctx context.Context, serverID int64) ([]*Suppression, error) {
	rows, err := s.query(ctx, `SELECT `+suppressionColumns+` FROM suppressions WHERE server_id = ? ORDER BY address`, serverID)
	if err != nil {
		return nil, fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	out := []*Suppression{}
	for rows.Next() {
		x, err := scanSuppression(rows)
		if err != nil {
			return nil, fmt.Errorf("list suppressions: %w", err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// ServerSuppression returns a server's suppression entry for address
// (compared case-insensitively), expired or not; none wraps ErrNotFound.
func (s *Store) ServerSuppression(ctx context.Context, serverID int64, address string) (*Suppression, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	x, err := scanSuppression(s.queryRow(ctx, `SELECT `+suppressionColumns+` FROM suppressions
		WHERE server_id = ? AND type = ? AND address = ?`, serverID, SuppressionRecipient, address))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("suppression %s: %w", address, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("suppression %s: %w", address, err)
	}
	return x, nil
}
