package queuecmd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/queuecmd"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

func TestQueueShapeRetryAndWatch(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		populate(t, e)
		var sh store.QueueShape
		res := e.Run(t, newCmd, "queue", "shape", "--json")
		if err := json.Unmarshal([]byte(res.Out), &sh); err != nil || res.Code != 0 {
			t.Fatalf("shape --json: exit %d, %v", res.Code, err)
		}
		if sh.Total.Total != 4 || len(sh.Domains) != 2 || sh.Domains[0].Domain != "dest.test" || sh.Domains[0].Total != 3 || sh.Domains[0].Counts[0] != 3 {
			t.Fatalf("shape = %+v", sh)
		}
		res = e.Run(t, newCmd, "queue", "shape")
		lines := strings.Split(strings.TrimSpace(res.Out), "\n")
		if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "DOMAIN SCOPE T 5 10 20 40 80 160 320 640 1280 1280+" ||
			strings.Join(strings.Fields(lines[1]), " ") != "TOTAL - 4 4 0 0 0 0 0 0 0 0 0" {
			t.Fatalf("shape table:\n%s", res.Out)
		}

		var buckets []queue.RetryBucket
		res = e.Run(t, newCmd, "queue", "retry", "--json")
		if err := json.Unmarshal([]byte(res.Out), &buckets); err != nil || res.Code != 0 {
			t.Fatalf("retry --json: exit %d, %v", res.Code, err)
		}
		if n := len(buckets); n != 8 || buckets[n-1].Count != 1 {
			t.Fatalf("retry buckets = %+v, want the 2030 entry in the last", buckets)
		}
		if res = e.Run(t, newCmd, "queue", "retry"); !strings.Contains(res.Out, "overdue") || !strings.Contains(res.Out, "within 1h0m0s") {
			t.Fatalf("retry table:\n%s", res.Out)
		}

		res = e.Run(t, newCmd, "queue", "--watch", "100ms", "--count", "2")
		if res.Code != 0 || strings.Count(res.Out, "SQL:    4 queued") != 2 || strings.Count(res.Out, "Refreshed ") != 2 {
			t.Fatalf("watch: exit %d\n%s", res.Code, res.Out)
		}
	})
}

func TestQueueShapeUsage(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"queue", "shape", "--limit", "0"}, "--limit must be between 1 and 1000"},
		{[]string{"queue", "--watch", "1ms"}, "--watch must be at least 100ms"},
		{[]string{"queue", "retry", "x"}, "takes no arguments"},
	} {
		res := e.Run(t, newCmd, tc.args...)
		if res.Code != cli.ExitUsage || res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tc.err) {
			t.Fatalf("%v: exit %d, %v; want usage error %q", tc.args, res.Code, res.RunErr, tc.err)
		}
	}
}

// populate leaves two dead letters: row 1 still queued, row 4 gone. Requeue
// puts back the first only, and a second requeue finds nothing more to do.
func TestQueueDeadRequeue(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		acc := populate(t, e)
		var out queuecmd.Requeued
		res := e.Run(t, newCmd, "queue", "dead", "requeue", "--json")
		if err := json.Unmarshal([]byte(res.Out), &out); err != nil || res.Code != 0 {
			t.Fatalf("exit %d, %v, %q", res.Code, err, res.Out)
		}
		if len(out.Requeued) != 1 || out.Requeued[0].Job.ID != acc[0].QueuedID || len(out.Skipped) != 1 || out.Skipped[0].Job.ID != acc[3].QueuedID {
			t.Fatalf("requeue = %+v", out)
		}
		rdb, keys := e.Redis(t)
		missing, err := queue.New(queue.Options{Client: rdb, Keys: keys}).Missing(context.Background(), queue.Outgoing, []int64{acc[0].QueuedID})
		if err != nil || len(missing) != 0 {
			t.Fatalf("requeued row not on the stream: missing %v, %v", missing, err)
		}
		res = e.Run(t, newCmd, "queue", "dead", "requeue")
		if res.Code != 0 || !strings.Contains(res.Out, "Requeued 0 dead letters; left 1 whose row is gone.") {
			t.Fatalf("second requeue: exit %d\n%s", res.Code, res.Out)
		}
	})
}
