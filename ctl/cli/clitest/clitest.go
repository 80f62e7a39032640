// Package clitest runs postalctl commands in tests against a real
// configuration file, a real database (SQLite or a private PostgreSQL
// database) and, when asked, a private Redis key prefix. Import it only from
// _test.go files.
package clitest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// Env is a configured installation for one test.
type Env struct {
	// Dir holds postal.yml (and the SQLite file, signing key, ...).
	Dir string
	// ConfigPath is Dir/postal.yml.
	ConfigPath string
	// Backend is "sqlite" or "postgres".
	Backend string
	// Store is a migrated store on the same database the commands use.
	Store *store.Store
	// Extra environment for commands (key -> value).
	Env map[string]string
}

// Backends lists the database backends every command is tested on.
func Backends() []string { return []string{"sqlite", "postgres"} }

// Each runs fn as a subtest with an Env per backend.
func Each(t *testing.T, fn func(t *testing.T, e *Env)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b, func(t *testing.T) { fn(t, New(t, b, true)) })
	}
}

// New writes a postal.yml for backend ("sqlite" or "postgres"); when
// migrate is true the schema is brought up to date first.
func New(t testing.TB, backend string, migrate bool) *Env {
	t.Helper()
	dir := t.TempDir()
	e := &Env{Dir: dir, ConfigPath: filepath.Join(dir, "postal.yml"), Backend: backend, Env: map[string]string{}}
	var db string
	var o store.Options
	switch backend {
	case "sqlite":
		o = store.Options{Driver: store.SQLite, Path: filepath.Join(dir, "postal.sqlite")}
		db = "  driver: sqlite\n  path: $config-file-root/postal.sqlite\n"
	case "postgres":
		o = storetest.PostgresOptions(t)
		db = fmt.Sprintf("  driver: postgres\n  url: %q\n", o.URL)
	default:
		t.Fatalf("clitest: unknown backend %q", backend)
	}
	prefix := "postal-test-" + store.RandomToken(6)
	yml := "version: 2\ndatabase:\n" + db + "redis:\n  url: " + redisURL() + "\n  key_prefix: " + prefix + "\n" +
		"dns:\n  return_path_domain: rp.postal.test\n  route_domain: routes.postal.test\n  spf_include: spf.postal.test\n" +
		"  mx_records: [mx1.postal.test, mx2.postal.test]\n  track_domain: track.postal.test\n" +
		"postal:\n  signing_key_path: $config-file-root/signing.key\n"
	if err := os.WriteFile(e.ConfigPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("clitest: open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if migrate {
		if _, err := s.Migrate(context.Background(), false); err != nil {
			t.Fatalf("clitest: migrate: %v", err)
		}
	}
	e.Store = s
	return e
}

func redisURL() string {
	if u := os.Getenv("POSTAL_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Result is what one command run produced.
type Result struct {
	Out, Err string
	// Code is the exit code postalctl would return.
	Code int
	// RunErr is the error the command returned.
	RunErr error
}

// Run executes the command built by newCmd under a root that has the global
// --config and --json flags, with --config pointing at the Env's file.
func (e *Env) Run(t testing.TB, newCmd func(*cli.Factory) *cobra.Command, args ...string) Result {
	t.Helper()
	return e.RunIO(t, "", false, newCmd, args...)
}

// RunIO is Run with input on stdin and, when terminal is set, stdout
// taken for a terminal (prompts, confirmations).
func (e *Env) RunIO(t testing.TB, input string, terminal bool, newCmd func(*cli.Factory) *cobra.Command, args ...string) Result {
	t.Helper()
	io := cli.NewTestIO(input, terminal)
	lookup := func(k string) (string, bool) {
		v, ok := e.Env[k]
		return v, ok
	}
	f := cli.NewFactory(io.IOStreams, lookup)
	defer f.Close()
	root := &cobra.Command{Use: "postalctl", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&f.ConfigPath, "config", "", "")
	root.PersistentFlags().BoolVar(&f.JSON, "json", false, "")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cli.UsageError{Err: err} })
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.AddCommand(newCmd(f))
	root.SetArgs(append([]string{"--config", e.ConfigPath}, args...))
	err := root.ExecuteContext(context.Background())
	return Result{Out: io.Out.String(), Err: io.ErrOut.String(), Code: cli.ExitCode(err), RunErr: err}
}
