package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"           // registers the "sqlite" database/sql driver
)

// ErrNotFound is returned (wrapped) when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when a write would break a uniqueness
// rule, such as a second domain of the same name on one server.
var ErrConflict = errors.New("already exists")

// Options selects and tunes the database.
type Options struct {
	// Driver is SQLite or Postgres.
	Driver Driver
	// Path is the SQLite database file; its folder is created if missing.
	Path string
	// URL is the PostgreSQL connection string (URL or key=value form).
	URL string
	// MaxOpenConns caps the connection pool (0: 20 for PostgreSQL, 8 for SQLite).
	MaxOpenConns int
}

// Store is a handle on the database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect dialect
	now     func() time.Time
	// writer admits one SQLite write transaction of this process at a
	// time (nil on PostgreSQL). SQLite has one writer anyway; queueing
	// here wakes the next writer the moment the previous one commits,
	// where SQLite's busy handler would sleep in steps of up to 100 ms
	// (a fixed floor under intake, claim and outcome commits that
	// overlap). Writers in other processes still meet busy_timeout.
	writer chan struct{}
	// stmts holds the statements of hot paths, prepared once per connection.
	stmts stmtCache
}

// Open connects to the database described by o and checks that it answers.
// It does not migrate: call Migrate (postalctl upgrade) for that.
func Open(ctx context.Context, o Options) (*Store, error) {
	var (
		db  *sql.DB
		err error
	)
	switch o.Driver {
	case SQLite, "":
		if o.Path == "" {
			return nil, errors.New("open sqlite: database.path is empty")
		}
		if err := os.MkdirAll(filepath.Dir(o.Path), 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite: create folder: %w", err)
		}
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(30000)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		db, err = sql.Open("sqlite", "file:"+o.Path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", o.Path, err)
		}
		n := o.MaxOpenConns
		if n <= 0 {
			n = 8
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		o.Driver = SQLite
	case Postgres:
		if o.URL == "" {
			return nil, errors.New("open postgres: database.url is empty")
		}
		db, err = sql.Open("pgx", o.URL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		n := o.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
	default:
		return nil, fmt.Errorf("open database: unknown driver %q (want sqlite or postgres)", o.Driver)
	}
	s := &Store{db: db, dialect: dialect{driver: o.Driver}, now: time.Now}
	if o.Driver == SQLite {
		s.writer = make(chan struct{}, 1)
	}
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Driver reports which database the store talks to.
func (s *Store) Driver() Driver { return s.dialect.driver }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database ping: %w", err)
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error { return errors.Join(s.stmts.close(), s.db.Close()) }

// SetClock replaces the store's clock (tests use it to control created_at
// and similar stamps). It must be called before the store is shared.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.dialect.rebind(q), args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.dialect.rebind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.dialect.rebind(q), args...)
}

// querier runs a statement on a connection or a transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// lightly runs fn with a querier whose commits return before they reach the
// disk: SQLite skips the WAL fsync of those commits (synchronous=NORMAL on
// one connection, restored to FULL before the connection goes back to the
// pool) and PostgreSQL commits with synchronous_commit off. A crash of the
// process loses nothing (the write is in the OS's cache or PostgreSQL's WAL
// buffers); a crash of the machine may undo the write, never corrupt. The
// next durable commit makes it durable too, since the log is one file.
//
// Only for writes whose loss is harmless: a claim (a lost claim leaves the
// row claimable again, exactly as an expired lock does, and the outcome that
// follows a send is committed durably). The statements run in one
// transaction on PostgreSQL and in autocommit on SQLite.
func (s *Store) lightly(ctx context.Context, fn func(querier) error) error {
	if s.dialect.driver == Postgres {
		return s.lightTx(ctx, func(t tx) error { return fn(t.Tx) })
	}
	return s.relaxed(ctx, func(conn *sql.Conn) error { return fn(conn) })
}

// lightTx is inTx with lightly's commit: fn's statements commit together,
// and the commit returns before it reaches the disk. For a transaction
// whose loss to a machine crash is harmless (a webhook attempt record: the
// request's lock then expires and it is sent again with the same uuid).
func (s *Store) lightTx(ctx context.Context, fn func(tx) error) error {
	if s.dialect.driver == Postgres {
		return s.inTx(ctx, func(t tx) error {
			if _, err := t.ExecContext(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
				return fmt.Errorf("relax commit: %w", err)
			}
			return fn(t)
		})
	}
	return s.relaxed(ctx, func(conn *sql.Conn) error {
		sqlTx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := fn(tx{Tx: sqlTx, d: s.dialect}); err != nil {
			_ = sqlTx.Rollback()
			return err
		}
		if err := sqlTx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}

// relaxed runs fn on one SQLite connection set to synchronous=NORMAL, in
// this process's write turn, and restores synchronous=FULL before the
// connection goes back to the pool (a connection that cannot be restored is
// dropped).
func (s *Store) relaxed(ctx context.Context, fn func(*sql.Conn) error) error {
	release, err := s.admitWriter(ctx)
	if err != nil {
		return err
	}
	defer release()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return fmt.Errorf("relax commit: %w", err)
	}
	fnErr := fn(conn)
	// Restore even when ctx has ended: this connection goes back to the
	// pool, and every other commit must stay durable.
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); err != nil {
		// Never hand a relaxed connection back: drop it.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		if fnErr == nil {
			fnErr = fmt.Errorf("restore durable commits: %w", err)
		}
	}
	return fnErr
}

// lightlyQuery runs the single statement q (with `?` placeholders) as
// lightly does and calls each for every row it returns. On PostgreSQL the
// relaxed commit and the statement travel in one pipeline, one round trip
// (an implicit transaction: set_config(..., true) lasts until its commit),
// where lightly's BEGIN, SET LOCAL, statement and COMMIT take four.
func (s *Store) lightlyQuery(ctx context.Context, q string, args []any, each func(row interface{ Scan(...any) error }) error) error {
	if s.dialect.driver != Postgres {
		return s.lightly(ctx, func(qr querier) error {
			rows, err := qr.QueryContext(ctx, s.dialect.rebind(q), args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := each(rows); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	return s.withPgx(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		b.Queue(s.dialect.rebind(q), args...)
		br := c.SendBatch(ctx, b)
		err := readLightly(br, each)
		if cerr := br.Close(); err == nil && cerr != nil {
			err = cerr
		}
		return err
	})
}

func readLightly(br pgx.BatchResults, each func(row interface{ Scan(...any) error }) error) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("relax commit: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// tx is a transaction that rebinds placeholders for the store's dialect.
type tx struct {
	*sql.Tx
	d dialect
}

func (t tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.ExecContext(ctx, t.d.rebind(q), args...)
}

func (t tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(ctx, t.d.rebind(q), args...)
}

func (t tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.QueryRowContext(ctx, t.d.rebind(q), args...)
}

// stmt is a statement run many times in one transaction. On SQLite it is
// prepared once for the transaction (preparing per call dominated SQLite's
// cost); on PostgreSQL it is sent as it is: the driver prepares each
// statement text once per connection and keeps it (pgx's statement cache),
// where an explicit prepare costs a round trip to prepare and another to
// deallocate, in every transaction.
type stmt struct {
	t        tx
	q        string
	prepared *sql.Stmt
}

// prepare returns q (with `?` placeholders) as a stmt of t.
func (t tx) prepare(ctx context.Context, q string) (*stmt, error) {
	st := &stmt{t: t, q: t.d.rebind(q)}
	if t.d.driver == Postgres {
		return st, nil
	}
	p, err := t.PrepareContext(ctx, st.q)
	if err != nil {
		return nil, err
	}
	st.prepared = p
	return st, nil
}

func (st *stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	if st.prepared != nil {
		return st.prepared.ExecContext(ctx, args...)
	}
	return st.t.ExecContext(ctx, st.q, args...)
}

func (st *stmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	if st.prepared != nil {
		return st.prepared.QueryRowContext(ctx, args...)
	}
	return st.t.QueryRowContext(ctx, st.q, args...)
}

// Close releases a prepared statement; nil and unprepared ones are no-ops.
func (st *stmt) Close() error {
	if st == nil || st.prepared == nil {
		return nil
	}
	return st.prepared.Close()
}

// admitWriter waits for this process's turn to write (SQLite only) and
// returns the function that ends it. It fails when ctx ends first.
func (s *Store) admitWriter(ctx context.Context) (func(), error) {
	if s.writer == nil {
		return func() {}, nil
	}
	select {
	case s.writer <- struct{}{}:
		return func() { <-s.writer }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to write: %w", ctx.Err())
	}
}

// inTx runs fn in a transaction and commits it when fn returns nil. On
// SQLite every transaction is a writer (BEGIN IMMEDIATE) and waits for
// admitWriter.
func (s *Store) inTx(ctx context.Context, fn func(tx) error) error {
	release, err := s.admitWriter(ctx)
	if err != nil {
		return err
	}
	defer release()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := tx{Tx: sqlTx, d: s.dialect}
	if err := fn(t); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// micros converts a time to the stored integer form; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros converts a stored integer back to a time; NULL is the zero time.
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64)
}

// nullID turns 0 into NULL for optional foreign keys.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// nullString turns "" into NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// RandomToken returns n random bytes as lower-case hex (2n characters).
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program rather than return short
	return hex.EncodeToString(b)
}

// withPgx runs fn on one pooled PostgreSQL connection as pgx's own
// connection, for pipelines (pgx.Batch) that database/sql cannot express.
func (s *Store) withPgx(ctx context.Context, fn func(c *pgx.Conn) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres connection is a %T, not pgx's", dc)
		}
		return fn(pc.Conn())
	})
}
