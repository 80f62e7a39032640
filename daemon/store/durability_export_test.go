package store

import (
	"context"
	"database/sql"
)

// CommitDurabilityForTest reports how commits on q reach the disk: SQLite's
// synchronous level (2 FULL, 1 NORMAL) or PostgreSQL's synchronous_commit.
func CommitDurabilityForTest(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, driver Driver) (string, error) {
	var v string
	stmt := "PRAGMA synchronous"
	if driver == Postgres {
		stmt = "SHOW synchronous_commit"
	}
	err := q.QueryRowContext(ctx, stmt).Scan(&v)
	return v, err
}

// LightlyForTest runs fn as the claims run: see lightly.
func (s *Store) LightlyForTest(ctx context.Context, fn func(q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) error) error {
	return s.lightly(ctx, func(q querier) error { return fn(q) })
}

// LightTxForTest runs fn as webhook attempt records run: see lightTx.
func (s *Store) LightTxForTest(ctx context.Context, fn func(q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) error) error {
	return s.lightTx(ctx, func(t tx) error { return fn(t.Tx) })
}

// DBForTest exposes the pool to tests.
func (s *Store) DBForTest() *sql.DB { return s.db }
