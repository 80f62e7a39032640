package queuecmd_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/queuecmd"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

func TestDropArgs(t *testing.T) {
	e := clitest.New(t, "sqlite", false)
	tests := []struct {
		args []string
		code int
		err  string
		want queuecmd.DropOptions
	}{
		{args: []string{"3", "5"}, want: queuecmd.DropOptions{IDs: []int64{3, 5}, Limit: 10000}},
		{args: []string{"--domain", "gmail.com", "--server", "acme/mail", "--yes"},
			want: queuecmd.DropOptions{Domain: "gmail.com", Server: "acme/mail", Yes: true, Limit: 10000}},
		{args: []string{"--held", "--server", "acme/mail", "-y", "--limit", "50"},
			want: queuecmd.DropOptions{Held: true, Server: "acme/mail", Yes: true, Limit: 50}},
		{args: []string{"--dead"}, want: queuecmd.DropOptions{Dead: true, Limit: 10000}},
		{args: []string{}, code: cli.ExitUsage, err: "nothing selected"},
		{args: []string{"x1"}, code: cli.ExitUsage, err: `"x1" is not a queued row id`},
		{args: []string{"--dead", "--held"}, code: cli.ExitUsage, err: "--dead cannot be combined"},
		{args: []string{"--held", "--domain", "a.test"}, code: cli.ExitUsage, err: "--held selects by --server only"},
		{args: []string{"--server", "nope"}, code: cli.ExitUsage, err: "ORG/SERVER"},
		{args: []string{"--domain", "a.test", "--limit", "0"}, code: cli.ExitUsage, err: "--limit must be between 1 and 100000"},
		{args: []string{"--dead", "--limit", "20000"}, code: cli.ExitUsage, err: "with --dead, --limit"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *queuecmd.DropOptions
			res := e.Run(t, func(f *cli.Factory) *cobra.Command {
				root := &cobra.Command{Use: "queue"}
				root.AddCommand(queuecmd.NewDropCmd(f, func(_ context.Context, o *queuecmd.DropOptions) error { got = o; return nil }))
				return root
			}, append([]string{"queue", "drop"}, tt.args...)...)
			if res.Code != tt.code || (tt.err != "" && (res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err))) {
				t.Fatalf("exit %d, err %v; want %d with %q", res.Code, res.RunErr, tt.code, tt.err)
			}
			if tt.code != 0 {
				return
			}
			got.Factory = nil
			if !slices.Equal(got.IDs, tt.want.IDs) || got.Domain != tt.want.Domain || got.Server != tt.want.Server ||
				got.Held != tt.want.Held || got.Dead != tt.want.Dead || got.Limit != tt.want.Limit || got.Yes != tt.want.Yes {
				t.Fatalf("options = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestDropRemovesFromSQLAndRedis(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		acc := populate(t, e)
		rdb, keys := e.Redis(t)
		q := queue.New(queue.Options{Client: rdb, Keys: keys})
		status := func(a store.Accepted) string {
			t.Helper()
			m, err := e.Store.Message(ctx, a.MessageID)
			if err != nil {
				t.Fatal(err)
			}
			return m.Status
		}
		id2 := []string{"queue", "drop", "2"}
		// A pipe without --yes is refused; a terminal asks, and "n" keeps everything.
		if res := e.Run(t, newCmd, id2...); res.Code != cli.ExitUsage || !strings.Contains(res.RunErr.Error(), "add --yes") {
			t.Fatalf("pipe without --yes: exit %d, %v", res.Code, res.RunErr)
		}
		res := e.RunIO(t, "n\n", true, newCmd, id2...)
		if res.Code != cli.ExitFailure || !strings.Contains(res.Out, "About to drop 1 messages (first: message 2 to b@dest.test). Proceed? [y/N]") {
			t.Fatalf("declined: exit %d, %v, %q", res.Code, res.RunErr, res.Out)
		}
		if status(acc[1]) != store.StatusPending {
			t.Fatalf("declined drop changed message 2: %s", status(acc[1]))
		}
		res = e.RunIO(t, "y\n", true, newCmd, id2...)
		if res.Code != 0 || !strings.Contains(res.Out, "Dropped 1 messages (now HoldCancelled); removed 1 stream entries, 0 retries, 1 inflight marks") {
			t.Fatalf("confirmed: exit %d, %v\n%s", res.Code, res.RunErr, res.Out)
		}
		if status(acc[1]) != store.StatusHoldCancelled {
			t.Fatalf("message 2 after drop: %s", status(acc[1]))
		}
		if missing, err := q.Missing(ctx, queue.Outgoing, []int64{acc[1].QueuedID}); err != nil || len(missing) != 1 {
			t.Fatalf("message 2 still inflight: %v %v", missing, err)
		}
		// By domain, as JSON: the retry-set member goes too.
		res = e.Run(t, newCmd, "queue", "drop", "--domain", "other.test", "--yes", "--json")
		var out queuecmd.Dropped
		if err := json.Unmarshal([]byte(res.Out), &out); err != nil || res.Code != 0 {
			t.Fatalf("by domain: exit %d, %v, %q", res.Code, err, res.Out)
		}
		if len(out.Dropped) != 1 || out.Dropped[0].MessageID != acc[4].MessageID || out.Redis != (queue.Forgotten{Retries: 1, Inflight: 1}) {
			t.Fatalf("by domain: %+v", out)
		}
		// Dead letters: both deleted; the one whose row is still queued is dropped.
		res = e.Run(t, newCmd, "queue", "drop", "--dead", "--yes", "--json")
		out = queuecmd.Dropped{}
		if err := json.Unmarshal([]byte(res.Out), &out); err != nil || res.Code != 0 {
			t.Fatalf("dead: exit %d, %v, %q", res.Code, err, res.Out)
		}
		if out.DeadLetters != 2 || len(out.Dropped) != 1 || out.Dropped[0].MessageID != acc[0].MessageID {
			t.Fatalf("dead: %+v", out)
		}
		if letters, err := q.DeadLetters(ctx, 10); err != nil || len(letters) != 0 {
			t.Fatalf("dead letters left: %v %v", letters, err)
		}
		counts, err := e.Store.CountQueued(ctx, time.Now())
		if err != nil || counts.Total != 1 {
			t.Fatalf("queued rows left = %+v, %v; want message 3's only", counts, err)
		}
		res = e.Run(t, newCmd, "queue", "drop", "--domain", "nowhere.test")
		if res.Code != 0 || !strings.Contains(res.Out, "Nothing matches; nothing dropped.") {
			t.Fatalf("nothing: exit %d, %q", res.Code, res.Out)
		}
	})
}
