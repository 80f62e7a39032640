package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the PostgreSQL advisory lock that serialises upgrades.
const migrationLockKey = 7_202_611_24

// Migration is one versioned schema change embedded in the binary.
type Migration struct {
	// Version is the number the file name starts with; versions increase by one.
	Version int `json:"version"`
	// Name is the rest of the file name, without ".sql".
	Name string `json:"name"`
	sql  string
}

// AppliedMigration reports one migration applied by Migrate.
type AppliedMigration struct {
	Version  int           `json:"version"`
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// SchemaStatus describes the database's schema against the binary's.
type SchemaStatus struct {
	// Current is the highest applied version (0: empty database).
	Current int `json:"current"`
	// Latest is the highest version this binary knows.
	Latest int `json:"latest"`
	// Pending lists the migrations not yet applied, in order.
	Pending []Migration `json:"pending"`
}

// UpToDate reports whether the schema is exactly the binary's.
func (s SchemaStatus) UpToDate() bool { return s.Current == s.Latest }

// ErrSchemaTooNew is returned (wrapped) by CheckSchema when the database was
// migrated by a newer binary.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// ErrSchemaBehind is returned (wrapped) by CheckSchema when migrations are pending.
var ErrSchemaBehind = errors.New("database schema is older than this binary")

// Migrations lists every migration embedded in the binary, in version order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(fmt.Sprintf("embedded migrations unreadable: %v", err)) // a build defect, caught by every test
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic(fmt.Sprintf("embedded migration %q is not named NNNN_name.sql", name))
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", name))
		if err != nil {
			panic(fmt.Sprintf("embedded migration %q unreadable: %v", name, err))
		}
		out = append(out, Migration{Version: v, Name: rest, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			panic(fmt.Sprintf("embedded migrations are not numbered 1..n: %d is %d", i+1, m.Version))
		}
	}
	return out
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`

// currentVersion reads the applied version; a database without the
// bookkeeping table is at version 0.
func currentVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, d dialect) (int, error) {
	var exists int
	var err error
	if d.driver == Postgres {
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`).Scan(&exists)
	} else {
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&exists)
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if exists == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// SchemaStatus reports the applied and known versions without changing anything.
func (s *Store) SchemaStatus(ctx context.Context) (SchemaStatus, error) {
	all := Migrations()
	cur, err := currentVersion(ctx, s.db, s.dialect)
	if err != nil {
		return SchemaStatus{}, err
	}
	st := SchemaStatus{Current: cur, Latest: len(all)}
	for _, m := range all {
		if m.Version > cur {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

// CheckSchema returns nil when the schema is exactly the binary's, and an
// error wrapping ErrSchemaBehind or ErrSchemaTooNew otherwise.
func (s *Store) CheckSchema(ctx context.Context) error {
	st, err := s.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	switch {
	case st.Current < st.Latest:
		return fmt.Errorf("%w (database at %d, binary at %d): run `postalctl upgrade`", ErrSchemaBehind, st.Current, st.Latest)
	case st.Current > st.Latest:
		return fmt.Errorf("%w (database at %d, binary at %d): upgrade postald", ErrSchemaTooNew, st.Current, st.Latest)
	}
	return nil
}

// MigrateResult reports what Migrate did (or, in a dry run, would do).
type MigrateResult struct {
	From    int                `json:"from"`
	To      int                `json:"to"`
	DryRun  bool               `json:"dry_run"`
	Applied []AppliedMigration `json:"applied"`
}

// Migrate applies every pending migration, each in its own transaction
// together with its version row, under a lock that serialises concurrent
// upgrades. It is idempotent. With dryRun it only reports what is pending.
// On failure the failed migration is rolled back; those before it stay
// applied and are listed in the result.
func (s *Store) Migrate(ctx context.Context, dryRun bool) (MigrateResult, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	if s.dialect.driver == Postgres && !dryRun {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
			return MigrateResult{}, fmt.Errorf("migrate: take lock: %w", err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
		}()
	}
	from, err := currentVersion(ctx, conn, s.dialect)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("migrate: %w", err)
	}
	res := MigrateResult{From: from, To: from, DryRun: dryRun}
	all := Migrations()
	if from > len(all) {
		return res, fmt.Errorf("migrate: %w (database at %d, binary at %d)", ErrSchemaTooNew, from, len(all))
	}
	for _, m := range all[from:] {
		if dryRun {
			res.Applied = append(res.Applied, AppliedMigration{Version: m.Version, Name: m.Name})
			res.To = m.Version
			continue
		}
		start := time.Now()
		applied, err := s.applyMigration(ctx, conn, m)
		if err != nil {
			return res, fmt.Errorf("migration %d (%s) failed and was rolled back: %w", m.Version, m.Name, err)
		}
		if applied {
			res.Applied = append(res.Applied, AppliedMigration{Version: m.Version, Name: m.Name, Duration: time.Since(start)})
		}
		res.To = m.Version
	}
	return res, nil
}

// applyMigration runs one migration in a transaction on conn. It re-reads
// the version inside the transaction, so on SQLite (where the transaction
// holds the write lock) a concurrent upgrader's work is never repeated.
func (s *Store) applyMigration(ctx context.Context, conn *sql.Conn, m Migration) (bool, error) {
	t, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = t.Rollback() }()
	if _, err := t.ExecContext(ctx, createMigrationsTable); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	cur, err := currentVersion(ctx, t, s.dialect)
	if err != nil {
		return false, err
	}
	if cur >= m.Version {
		return false, nil
	}
	if _, err := t.ExecContext(ctx, s.dialect.schema(m.sql)); err != nil {
		return false, err
	}
	if _, err := t.ExecContext(ctx, s.dialect.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.Version, m.Name, time.Now().UnixMicro()); err != nil {
		return false, fmt.Errorf("record version: %w", err)
	}
	if err := t.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
