package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// stmtCache holds statements prepared on the pool, keyed by their portable
// text. database/sql prepares such a statement once on each connection it
// runs on and keeps it there (Tx.StmtContext reuses the connection's copy),
// so a statement on a hot path is compiled once per connection instead of
// once per call: on SQLite that is the parse and plan, on PostgreSQL a
// Parse round trip and a DEALLOCATE.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns the pool's statement for q (with `?` placeholders),
// preparing it the first time. Call it before a transaction starts, not
// inside one: the first preparation takes a connection from the pool.
// Bind the result to a transaction with tx.stmt.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	c := &s.stmts
	c.mu.Lock()
	st := c.m[q]
	c.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.dialect.rebind(q))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[q]; old != nil { // another caller prepared it meanwhile
		_ = st.Close()
		return old, nil
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[q] = st
	return st, nil
}

// preparedAll returns prepared(q) for each of qs.
func (s *Store) preparedAll(ctx context.Context, qs ...string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, len(qs))
	for i, q := range qs {
		st, err := s.prepared(ctx, q)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// close closes every cached statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}
