package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/status"
)

// Heartbeats and cron run records work on a Redis Cluster and behind
// Sentinel.
func TestBoardOnClusterAndSentinel(t *testing.T) {
	for _, tc := range redistest.Topologies() {
		t.Run(tc.Name, func(t *testing.T) {
			c, keys := redistest.NewOn(t, tc.Start(t))
			b := status.NewBoard(c, keys)
			ctx := context.Background()
			p := status.Process{ID: "a:1", Host: "a", PID: 1, Roles: []string{"worker"}, Version: "1.0", Started: time.Now().UTC().Truncate(time.Second)}
			hb := startHeartbeat(t, b, p, 20*time.Millisecond, 2*time.Second)
			pollUntil(t, 5*time.Second, "the process listed", func() bool {
				ps, err := b.Processes(ctx)
				return err == nil && len(ps) == 1 && ps[0].ID == "a:1"
			})
			alive, err := b.Alive(ctx, []string{"a:1", "gone:2"})
			if err != nil || !alive["a:1"] || alive["gone:2"] {
				t.Fatalf("Alive = %v, %v; want only a:1", alive, err)
			}
			hb.stop(t)
			if ps, err := b.Processes(ctx); err != nil || len(ps) != 0 {
				t.Fatalf("Processes after stop = %+v, %v; want none", ps, err)
			}
			run := status.CronRun{Task: "tidy", Started: time.Now().UTC().Truncate(time.Millisecond), Duration: time.Second}
			if err := b.RecordCronRun(ctx, run); err != nil {
				t.Fatalf("RecordCronRun: %v", err)
			}
			trs, err := b.CronRuns(ctx)
			if err != nil || len(trs) != 1 || trs[0].Task != "tidy" {
				t.Fatalf("CronRuns = %+v, %v; want the tidy run", trs, err)
			}
		})
	}
}
