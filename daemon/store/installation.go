package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// InstallationID returns the installation's id: 32 hex digits chosen at
// random by the first caller and kept in the installation table for the
// life of the database (a backup restored elsewhere keeps it). Concurrent
// first calls from several processes all get the one that was stored.
func (s *Store) InstallationID(ctx context.Context) (string, error) {
	const read = `SELECT id FROM installation WHERE singleton = 1`
	var id string
	err := s.queryRow(ctx, read).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read installation id: %w", err)
	}
	if _, err := s.exec(ctx, `INSERT INTO installation (singleton, id, created_at) VALUES (1, ?, ?)
		ON CONFLICT (singleton) DO NOTHING`, RandomToken(16), s.now().UnixMicro()); err != nil {
		return "", fmt.Errorf("create installation id: %w", err)
	}
	if err := s.queryRow(ctx, read).Scan(&id); err != nil {
		return "", fmt.Errorf("read installation id: %w", err)
	}
	return id, nil
}
