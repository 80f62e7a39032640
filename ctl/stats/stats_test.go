package stats_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/stats"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestStatsArgs(t *testing.T) {
	e := clitest.New(t, "sqlite", false)
	tests := []struct {
		args                []string
		code                int
		err                 string
		path                string
		hours, days, months int
	}{
		{args: []string{"stats"}, hours: 24},
		{args: []string{"stats", "acme/mail", "--days", "7"}, path: "acme/mail", days: 7},
		{args: []string{"stats", "--hours", "3"}, hours: 3},
		{args: []string{"stats", "--months", "12"}, months: 12},
		{args: []string{"stats", "--hours", "3", "--days", "2"}, code: cli.ExitUsage, err: "--hours, --days and --months cannot be used together"},
		{args: []string{"stats", "--days", "1", "--months", "2"}, code: cli.ExitUsage, err: "cannot be used together"},
		{args: []string{"stats", "--months", "-1"}, code: cli.ExitUsage, err: "--months must be between 1 and 120"},
		{args: []string{"stats", "--hours", "100000"}, code: cli.ExitUsage, err: "--hours must be between 1 and 744"},
		{args: []string{"stats", "a/b", "c/d"}, code: cli.ExitUsage, err: "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *stats.Options
			res := e.Run(t, func(f *cli.Factory) *cobra.Command {
				return stats.NewCmd(f, func(_ context.Context, o *stats.Options) error { got = o; return nil })
			}, tt.args...)
			if res.Code != tt.code || (tt.err != "" && (res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err))) {
				t.Fatalf("exit %d, err %v; want %d with %q", res.Code, res.RunErr, tt.code, tt.err)
			}
			if tt.code == 0 && (got.Path != tt.path || got.Hours != tt.hours || got.Days != tt.days || got.Months != tt.months) {
				t.Fatalf("options = %+v", got)
			}
		})
	}
}

func TestStatsPrintsTheSQLStatistics(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, e.Store, "example.com", "")
		var msgs []store.NewMessage
		for _, r := range []string{"a@dest.test", "b@dest.test", "c@dest.test"} {
			msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r, MailFrom: "m@example.com",
				Queue: true, QueueDomain: "dest.test"})
		}
		acc, err := e.Store.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: msgs}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a := acc[0][0]
		claimed, err := e.Store.ClaimQueued(ctx, []int64{a.QueuedID}, "w", now.Add(time.Second), now.Add(time.Hour))
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim = %d, %v", len(claimed), err)
		}
		if _, err := e.Store.RecordOutcomes(ctx, []store.Outcome{store.Sent(claimed[0], store.NewDelivery{})}); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"stats", "--json"}, {"stats", fx.Server.Path(), "--days", "2", "--json"},
			{"stats", "--months", "1", "--json"}} {
			res := e.Run(t, func(f *cli.Factory) *cobra.Command { return stats.NewCmd(f, nil) }, args...)
			var out stats.Output
			if err := json.Unmarshal([]byte(res.Out), &out); err != nil || res.Code != 0 {
				t.Fatalf("%v: exit %d, %v, %q", args, res.Code, err, res.Out)
			}
			last := out.Rows[len(out.Rows)-1]
			if out.Total.Outgoing != 3 || out.Total.Sent != 1 || last.Outgoing != 3 || last.Sent != 1 {
				t.Fatalf("%v: %+v", args, out)
			}
			if p := store.Period(out.Period); !last.Start.Equal(p.Start(time.Now())) {
				t.Fatalf("%v: last period starts %s, want %s", args, last.Start, p.Start(time.Now()))
			}
		}
		res := e.Run(t, func(f *cli.Factory) *cobra.Command { return stats.NewCmd(f, nil) }, "stats", "--hours", "2")
		lines := strings.Split(strings.TrimSpace(res.Out), "\n")
		if res.Code != 0 || len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "HOUR (UTC) INCOMING OUTGOING SENT SOFT-FAILED HARD-FAILED HELD BOUNCES" ||
			strings.Join(strings.Fields(lines[len(lines)-1]), " ") != "TOTAL 0 3 1 0 0 0 0" {
			t.Fatalf("table: exit %d\n%s", res.Code, res.Out)
		}
		res = e.Run(t, func(f *cli.Factory) *cobra.Command { return stats.NewCmd(f, nil) }, "stats", "acme/nope")
		if res.Code != 1 || !strings.Contains(res.RunErr.Error(), "server acme/nope not found") {
			t.Fatalf("unknown server: exit %d, %v", res.Code, res.RunErr)
		}
	})
}
