package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	ctlstatus "github.com/postalgo/postal/ctl/status"
	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
)

func newCmd(f *cli.Factory) *cobra.Command { return ctlstatus.NewCmd(f, nil) }

var started = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// running publishes a heartbeat and holds the cron lease until the test
// body returns, and records two cron runs.
func running(t *testing.T, e *clitest.Env) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rdb, keys := e.Redis(t)
	board := status.NewBoard(rdb, keys)
	hb := make(chan error, 1)
	go func() {
		hb <- board.Heartbeat(ctx, status.Process{ID: "mx1:100", Host: "mx1", PID: 100, Roles: []string{"smtp-server", "worker"},
			Version: "test", Started: started}, time.Second, 10*time.Second)
	}()
	held := make(chan struct{})
	ls := make(chan error, 1)
	go func() {
		ls <- lease.New(lease.Options{Client: rdb, Keys: keys, Name: "cron", Owner: "ops:7:aa", TTL: 10 * time.Second}).
			Run(ctx, func(ctx context.Context, _ int64) error {
				close(held)
				<-ctx.Done()
				return nil
			})
	}()
	<-held
	for _, r := range []status.CronRun{
		{Task: "prune", Started: started.Add(time.Minute), Duration: 1500 * time.Millisecond, OK: true, Token: 5, Owner: "ops:7:aa"},
		{Task: "check_dns", Started: started.Add(2 * time.Minute), Duration: 20 * time.Millisecond, Error: "lookup timed out", Token: 5, Owner: "ops:7:aa"},
	} {
		if err := board.RecordCronRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, err := board.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(procs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat never appeared")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	return func() {
		cancel()
		<-hb
		<-ls
	}
}

func TestStatusShowsProcessesLeasesAndCron(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		stop := running(t, e)
		defer stop()
		res := e.Run(t, newCmd, "status", "--json")
		if res.Code != 0 {
			t.Fatalf("status --json: exit %d, %v", res.Code, res.RunErr)
		}
		clitest.Golden(t, "status", clitest.Normalize(t, res.Out, volatile))
		var r ctlstatus.Result
		if err := json.Unmarshal([]byte(res.Out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Leases[0].Token < time.Now().Add(-time.Minute).UnixMilli() || r.Leases[0].TTLMS <= 0 || r.Leases[0].TTLMS > 10_000 {
			t.Errorf("cron lease = %+v, want a token of at least the Unix ms and a TTL within 10 s", r.Leases[0])
		}
		if latest := len(store.Migrations()); r.Database.SchemaCurrent != latest || r.Database.SchemaLatest != latest {
			t.Errorf("schema %d of %d, want %d of %d", r.Database.SchemaCurrent, r.Database.SchemaLatest, latest, latest)
		}
		if r.Database.Driver != e.Backend {
			t.Errorf("driver = %q, want %q", r.Database.Driver, e.Backend)
		}

		latest := len(store.Migrations())
		human := e.Run(t, newCmd, "status")
		for _, want := range []string{
			"Database:  ok (" + e.Backend + ")",
			fmt.Sprintf("Schema:    version %d of %d, current", latest, latest),
			"Redis:     ok",
			"mx1:100  smtp-server,worker  test     2025-03-14 09:00:00",
			"cron      ops:7:aa",
			"requeuer  (none)    -",
			"check_dns  2025-03-14 09:02:00  20ms      failed: lookup timed out  5",
			"prune      2025-03-14 09:01:00  1.5s      ok                        5",
		} {
			if !strings.Contains(human.Out, want) {
				t.Errorf("status output lacks %q:\n%s", want, human.Out)
			}
		}
		if human.Code != 0 {
			t.Errorf("exit %d, %v", human.Code, human.RunErr)
		}
	})
}

func TestStatusProblems(t *testing.T) {
	latest := len(store.Migrations())
	tests := []struct {
		name     string
		migrate  bool
		redisOff bool
		args     []string
		code     int
		err      string
		out      []string
	}{
		{"redis down still prints the SQL side", true, true, nil, cli.ExitFailure, "Redis is unreachable: ",
			[]string{"Database:  ok", fmt.Sprintf("Schema:    version %d of %d, current", latest, latest), "Redis:     UNREACHABLE", "cannot be shown"}},
		{"redis down in JSON", true, true, []string{"--json"}, cli.ExitFailure, "Redis is unreachable: ",
			[]string{`"schema_up_to_date": true`, `"ok": false`}},
		{"schema behind", false, false, nil, cli.ExitFailure, fmt.Sprintf("the schema is at version 0 of %d: run `postalctl upgrade`", latest),
			[]string{fmt.Sprintf("Schema:    version 0 of %d, NOT CURRENT", latest), "Redis:     ok", "No postald process has a live heartbeat.", "No cron task has run yet."}},
		{"extra argument", true, false, []string{"now"}, cli.ExitUsage, "takes no arguments", nil},
		{"zero timeout", true, false, []string{"--timeout", "0s"}, cli.ExitUsage, "--timeout must be positive", nil},
		{"missing config", true, false, []string{"--config", "/nonexistent/postal.yml"}, cli.ExitUsage, "/nonexistent/postal.yml", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := clitest.New(t, "sqlite", tt.migrate)
			if tt.redisOff {
				e.Env["REDIS_URL"] = clitest.ClosedRedisURL(t)
			}
			res := e.Run(t, newCmd, append([]string{"status"}, tt.args...)...)
			if res.Code != tt.code || res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err) {
				t.Fatalf("exit %d, err %v; want exit %d with an error containing %q", res.Code, res.RunErr, tt.code, tt.err)
			}
			if strings.Contains(res.RunErr.Error(), "\n") {
				t.Errorf("error is not one line: %q", res.RunErr)
			}
			for _, want := range tt.out {
				if !strings.Contains(res.Out, want) {
					t.Errorf("output lacks %q:\n%s", want, res.Out)
				}
			}
		})
	}
}

// Flags become Options.
func TestStatusOptions(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	var got *ctlstatus.Options
	res := e.Run(t, func(f *cli.Factory) *cobra.Command {
		return ctlstatus.NewCmd(f, func(_ context.Context, o *ctlstatus.Options) error { got = o; return nil })
	}, "status", "--timeout", "750ms")
	if res.Code != 0 || got == nil || got.Timeout != 750*time.Millisecond || got.Factory == nil {
		t.Fatalf("options = %+v (exit %d)", got, res.Code)
	}
}

// The key prefix: unclaimed, then this installation's, then another's,
// which is a problem that names the remedy.
func TestStatusShowsWhoOwnsTheKeyPrefix(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	ctx := context.Background()
	rdb, keys := e.Redis(t)
	id, err := e.Store.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := e.Run(t, newCmd, "status")
	if res.Code != 0 || !strings.Contains(res.Out, "Prefix:    "+keys.Name()+", not claimed yet (postald claims it for installation "+id+")") {
		t.Fatalf("unclaimed: exit %d, %v\n%s", res.Code, res.RunErr, res.Out)
	}
	if err := redisconn.ClaimPrefix(ctx, rdb, keys, id); err != nil {
		t.Fatal(err)
	}
	res = e.Run(t, newCmd, "status")
	if res.Code != 0 || !strings.Contains(res.Out, "Prefix:    "+keys.Name()+", this installation's ("+id+")") {
		t.Fatalf("ours: exit %d, %v\n%s", res.Code, res.RunErr, res.Out)
	}
	if _, err := redisconn.ResetPrefix(ctx, rdb, keys, "ffffffffffffffffffffffffffffffff"); err != nil {
		t.Fatal(err)
	}
	res = e.Run(t, newCmd, "status", "--json")
	var r ctlstatus.Result
	if err := json.Unmarshal([]byte(res.Out), &r); err != nil {
		t.Fatal(err)
	}
	want := ctlstatus.KeyPrefix{Prefix: keys.Name(), ThisInstallation: id, OwnedBy: "ffffffffffffffffffffffffffffffff"}
	if res.Code != cli.ExitFailure || r.KeyPrefix != want ||
		!strings.Contains(res.RunErr.Error(), "belongs to another installation (ffffffffffffffffffffffffffffffff), so postald will not start") {
		t.Fatalf("taken: exit %d, %v, %+v", res.Code, res.RunErr, r.KeyPrefix)
	}
	res = e.Run(t, newCmd, "status")
	if !strings.Contains(res.Out, "OWNED BY ANOTHER INSTALLATION (ffffffffffffffffffffffffffffffff; this one is "+id+")") {
		t.Fatalf("taken, human:\n%s", res.Out)
	}
}
