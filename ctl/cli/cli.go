// Package cli holds what every postalctl command shares: the IOStreams the
// command writes to, the Factory that lazily opens configuration, database
// and Redis, the error kinds that decide the exit code, and the one place
// where output is rendered as a table for people or as JSON for scripts.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/store"
)

// Exit codes: one table for every command.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// IOStreams is where a command reads and writes. Tests use NewTestIO.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// Terminal reports whether Out is a terminal (tables get colour-free
	// alignment either way; some commands print hints only to terminals).
	Terminal bool
}

// SystemIO returns the process's standard streams.
func SystemIO() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Terminal: term.IsTerminal(int(os.Stdout.Fd()))}
}

// UsageError is a mistake in how the command was called: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ConfigError is a configuration that cannot be found, read or validated:
// exit code 2.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrSilent signals failure (exit 1) after the command already printed
// what went wrong.
var ErrSilent = errors.New("failed")

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var u *UsageError
	var c *ConfigError
	var p *config.Problems
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u), errors.As(err, &c), errors.As(err, &p):
		return ExitUsage
	case isCobraUsage(err):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// isCobraUsage recognises the argument errors cobra itself produces.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// ExactArgs is cobra.ExactArgs whose error is a *UsageError naming the
// expected arguments.
func ExactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return Usagef("%s takes %s (got %d argument(s)); see --help", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

// Factory builds what commands need, lazily, once per process.
type Factory struct {
	IO *IOStreams
	// ConfigPath is the --config flag.
	ConfigPath string
	// JSON is the --json flag: print one machine-readable object.
	JSON bool
	// Lookup reads the environment (os.LookupEnv in production).
	Lookup func(string) (string, bool)
	// Now is the clock.
	Now func() time.Time

	cfg   *config.Config
	st    *store.Store
	rdb   redis.UniversalClient
	rkeys redisconn.Keys
}

// NewFactory returns a Factory over io and the environment lookup.
func NewFactory(io *IOStreams, lookup func(string) (string, bool)) *Factory {
	return &Factory{IO: io, Lookup: lookup, Now: time.Now}
}

// ConfigFile returns the path of the configuration file in use, as found by
// config.Locate ("" when none exists and defaults apply).
func (f *Factory) ConfigFile() (string, error) {
	p, err := config.Locate(f.ConfigPath, f.Lookup, fileExists)
	if errors.Is(err, config.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", &ConfigError{Err: err}
	}
	return p, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Config loads and validates the configuration once.
func (f *Factory) Config() (*config.Config, error) {
	if f.cfg != nil {
		return f.cfg, nil
	}
	p, err := f.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(p, f.Lookup)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	f.cfg = cfg
	return cfg, nil
}

// StoreOptions returns the database options from the configuration.
func StoreOptions(cfg *config.Config) store.Options {
	return store.Options{Driver: store.Driver(cfg.Database.Driver), Path: cfg.Database.Path, URL: cfg.Database.URL,
		MaxOpenConns: cfg.Database.MaxOpenConnections}
}

// RawStore opens the database without checking the schema (for upgrade).
func (f *Factory) RawStore(ctx context.Context) (*store.Store, error) {
	if f.st != nil {
		return f.st, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, StoreOptions(cfg))
	if err != nil {
		return nil, err
	}
	f.st = st
	return st, nil
}

// Store opens the database and checks that its schema is current.
func (f *Factory) Store(ctx context.Context) (*store.Store, error) {
	st, err := f.RawStore(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.CheckSchema(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// RedisOptions converts the redis section for redisconn.
func RedisOptions(r config.Redis) redisconn.Options {
	return redisconn.OptionsFrom(r)
}

// Redis returns the Redis client and our key namer.
func (f *Factory) Redis() (redis.UniversalClient, redisconn.Keys, error) {
	if f.rdb != nil {
		return f.rdb, f.rkeys, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, redisconn.Keys{}, err
	}
	c, err := redisconn.New(RedisOptions(cfg.Redis))
	if err != nil {
		return nil, redisconn.Keys{}, err
	}
	f.rdb, f.rkeys = c, redisconn.NewKeys(cfg.Redis.KeyPrefix)
	return f.rdb, f.rkeys, nil
}

// CheckRedisOwner refuses, before anything changes, a command that will
// write to Redis when another installation's database owns the key prefix
// (postald's rule, docs/operations.md): its stream entries would reach the
// other installation's workers. A Redis that does not answer is not a
// refusal: the command's SQL side stands and reconciliation dispatches.
func (f *Factory) CheckRedisOwner(ctx context.Context, st *store.Store) error {
	rdb, keys, err := f.Redis()
	if err != nil {
		return &ConfigError{Err: err}
	}
	id, err := st.InstallationID(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := redisconn.CheckPrefix(rctx, rdb, keys, id); err != nil {
		return &ConfigError{Err: err}
	}
	return nil
}

// Close releases whatever the factory opened.
func (f *Factory) Close() {
	if f.st != nil {
		_ = f.st.Close()
	}
	if f.rdb != nil {
		_ = f.rdb.Close()
	}
}

// Render prints v as indented JSON when --json was given, otherwise calls
// table with an aligned tab writer on Out.
func (f *Factory) Render(v any, table func(w io.Writer)) error {
	if f.JSON {
		return WriteJSON(f.IO.Out, v)
	}
	tw := tabwriter.NewWriter(f.IO.Out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// FormatTime renders a time for tables: "-" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}
