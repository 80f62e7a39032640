package queuecmd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/queuecmd"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func newCmd(f *cli.Factory) *cobra.Command { return queuecmd.NewCmd(f) }

var retryDue = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// populate queues five outgoing messages and spreads them over Redis:
// 1 dead-lettered (row still queued, so not dispatched), 2 waiting in the
// stream, 3 not dispatched at all, 4 dead-lettered and failed by the worker
// (row gone), 5 in the retry set.
func populate(t *testing.T, e *clitest.Env) []store.Accepted {
	t.Helper()
	ctx := context.Background()
	fx := storetest.NewFixture(t, e.Store, "example.com", "")
	var msgs []store.NewMessage
	for _, r := range []string{"a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@other.test"} {
		msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r, MailFrom: "m@example.com",
			Subject: "Hi", DomainID: fx.Domain.ID, Queue: true, QueueDomain: r[strings.IndexByte(r, '@')+1:]})
	}
	acc, err := e.Store.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: Hi\r\n\r\nbody"), Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	a := acc[0]
	rdb, keys := e.Redis(t)
	q := queue.New(queue.Options{Client: rdb, Keys: keys, MaxDeliveries: 1})
	deadLetter := func(x store.Accepted) {
		t.Helper()
		if err := q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: x.QueuedID, Domain: x.Domain}); err != nil {
			t.Fatal(err)
		}
		if ds, err := q.Read(ctx, queue.Outgoing, "worker-1", 1, 0); err != nil || len(ds) != 1 {
			t.Fatalf("read: %v, %v", ds, err)
		}
		if _, dead, err := q.Claim(ctx, queue.Outgoing, "worker-2", 0, 10); err != nil || len(dead) != 1 {
			t.Fatalf("claim: dead %v, %v", dead, err)
		}
	}
	deadLetter(a[0])
	deadLetter(a[3])
	if err := e.Store.FailQueued(ctx, a[3].QueuedID, "Given up after 1 deliveries."); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: a[1].QueuedID, Domain: a[1].Domain}); err != nil {
		t.Fatal(err)
	}
	if err := q.Schedule(ctx, queue.Outgoing, retryDue, queue.Job{ID: a[4].QueuedID, Domain: a[4].Domain}); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestQueueCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		acc := populate(t, e)
		transcript := ""
		for _, args := range [][]string{{"queue"}, {"queue", "ls"}, {"queue", "dead"}} {
			res := e.Run(t, newCmd, append(args, "--json")...)
			if res.Code != 0 {
				t.Fatalf("%v: exit %d, %v", args, res.Code, res.RunErr)
			}
			transcript += "$ " + strings.Join(args, " ") + "\n" + clitest.Normalize(t, res.Out, volatile)
		}
		clitest.Golden(t, "queue", transcript)

		var rows []queuecmd.Row
		res := e.Run(t, newCmd, "queue", "ls", "--json", "--limit", "2")
		if err := json.Unmarshal([]byte(res.Out), &rows); err != nil || len(rows) != 2 || rows[0].ID != acc[0].QueuedID {
			t.Fatalf("ls --limit 2 = %+v, %v", rows, err)
		}

		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"queue"}, []string{
				"SQL:    4 queued, 4 due now, 0 locked by a worker",
				"Redis:  2 inflight, 1 in the retry set, next due 2030-01-02 03:04:05",
				"2 dead letters",
				"outgoing  1       0        1    1          ok",
				"webhooks  0       0        0    0          ok",
				"`postalctl queue dead`",
			}},
			{[]string{"queue", "ls"}, []string{
				"1   1        outgoing  dest.test   0         due          -          no",
				"2   2        outgoing  dest.test   0         due          -          yes",
				"3   3        outgoing  dest.test   0         due          -          no",
				"5   5        outgoing  other.test  0         due          -          yes",
			}},
			{[]string{"queue", "ls", "--limit", "1"}, []string{"Showing the first 1 rows; see more with --limit."}},
			{[]string{"queue", "dead"}, []string{
				"outgoing  4   dest.test  1           delivered 1 times (max 1)  row gone: its message finished, or the worker failed it (HardFail)",
				"outgoing  1   dest.test  1           delivered 1 times (max 1)  still queued: message 1 (Pending, 0 attempts)",
			}},
		} {
			res := e.Run(t, newCmd, tc.args...)
			if res.Code != 0 {
				t.Fatalf("%v: exit %d, %v", tc.args, res.Code, res.RunErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Out, w) {
					t.Errorf("%v: output lacks %q:\n%s", tc.args, w, res.Out)
				}
			}
		}
	})
}

func TestQueueEmpty(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	e.Redis(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"queue", "ls"}, "The queue is empty."},
		{[]string{"queue", "dead"}, "No dead letters."},
		{[]string{"queue"}, "SQL:    0 queued"},
	} {
		res := e.Run(t, newCmd, tc.args...)
		if res.Code != 0 || !strings.Contains(res.Out, tc.want) {
			t.Errorf("%v: exit %d (%v), output %q; want %q", tc.args, res.Code, res.RunErr, res.Out, tc.want)
		}
	}
}

func TestQueueErrors(t *testing.T) {
	tests := []struct {
		name     string
		redisOff bool
		args     []string
		code     int
		err      string
		out      string
	}{
		{"stats with redis down prints SQL", true, []string{"queue"}, cli.ExitFailure, "cannot reach Redis, so only the SQL side is shown",
			"Redis:  UNREACHABLE"},
		{"stats JSON with redis down", true, []string{"queue", "--json"}, cli.ExitFailure, "cannot reach Redis", `"redis": null`},
		{"ls with redis down marks dispatch unknown", true, []string{"queue", "ls"}, cli.ExitFailure, "cannot reach Redis", "?"},
		{"dead with redis down", true, []string{"queue", "dead"}, cli.ExitFailure, "cannot reach Redis, where dead letters live", ""},
		{"zero limit", false, []string{"queue", "ls", "--limit", "0"}, cli.ExitUsage, "--limit must be between 1 and 10000", ""},
		{"huge limit", false, []string{"queue", "dead", "--limit", "100000"}, cli.ExitUsage, "--limit must be between 1 and 10000", ""},
		{"unknown verb", false, []string{"queue", "purge"}, cli.ExitUsage, "takes no arguments (or a verb: ls, dead)", ""},
		{"bad limit", false, []string{"queue", "ls", "--limit", "many"}, cli.ExitUsage, "invalid argument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := clitest.New(t, "sqlite", true)
			if tt.redisOff {
				fx := storetest.NewFixture(t, e.Store, "example.com", "")
				if _, err := e.Store.InsertSubmissions(context.Background(), []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
					{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com", Queue: true, QueueDomain: "dest.test"}}}}); err != nil {
					t.Fatal(err)
				}
				e.Env["REDIS_URL"] = clitest.ClosedRedisURL(t)
			}
			res := e.Run(t, newCmd, tt.args...)
			if res.Code != tt.code || res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err) {
				t.Fatalf("exit %d, err %v; want exit %d with an error containing %q", res.Code, res.RunErr, tt.code, tt.err)
			}
			if !strings.Contains(res.Out, tt.out) {
				t.Errorf("output lacks %q:\n%s", tt.out, res.Out)
			}
		})
	}
}

// Flags become Options (the command tree's verbs are built by NewCmd).
func TestQueueListLimitFlag(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	e.Redis(t)
	res := e.Run(t, newCmd, "queue", "ls", "--limit", "3", "--json")
	if res.Code != 0 || strings.TrimSpace(res.Out) != "[]" {
		t.Fatalf("exit %d, out %q", res.Code, res.Out)
	}
}
