package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/status"
)

// pollUntil calls cond until it reports true, failing the test after within.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

type heartbeat struct {
	cancel context.CancelFunc
	done   chan error
}

func startHeartbeat(t *testing.T, b *status.Board, p status.Process, every, ttl time.Duration) heartbeat {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := heartbeat{cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- b.Heartbeat(ctx, p, every, ttl) }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h heartbeat) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok && err != nil {
			t.Errorf("Heartbeat returned %v, want nil on stop", err)
		}
		if ok {
			close(h.done)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Heartbeat did not return within 5s of stop")
	}
}

func TestHeartbeatsListProcessesUntilStopped(t *testing.T) {
	c, keys := redistest.New(t)
	b := status.NewBoard(c, keys)
	ctx := context.Background()
	started := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	pa := status.Process{ID: "a:1", Host: "a", PID: 1, Roles: []string{"worker"}, Version: "1.0", Started: started}
	pb := status.Process{ID: "b:2", Host: "b", PID: 2, Roles: []string{"cron", "requeuer"}, Version: "1.0", Started: started}
	const every, ttl = 20 * time.Millisecond, 2 * time.Second
	hb := startHeartbeat(t, b, pb, every, ttl)
	startHeartbeat(t, b, pa, every, ttl)

	var got []status.Process
	pollUntil(t, 5*time.Second, "two processes", func() bool {
		var err error
		got, err = b.Processes(ctx)
		if err != nil {
			t.Fatalf("Processes: %v", err)
		}
		return len(got) == 2
	})
	for i, want := range []status.Process{pa, pb} {
		g := got[i]
		if g.ID != want.ID || g.Host != want.Host || g.PID != want.PID || !g.Started.Equal(want.Started) ||
			strings.Join(g.Roles, ",") != strings.Join(want.Roles, ",") || g.Seen.IsZero() {
			t.Fatalf("process %d = %+v, want %+v with Seen set", i, g, want)
		}
	}
	if left, err := c.PTTL(ctx, keys.Key("hb", "b:2")).Result(); err != nil || left <= 0 || left > ttl {
		t.Fatalf("heartbeat TTL = %v, %v; want within (0, %v]", left, err, ttl)
	}
	// The heartbeat is refreshed: Seen moves forward.
	firstSeen := got[1].Seen
	pollUntil(t, 5*time.Second, "a refreshed heartbeat", func() bool {
		ps, err := b.Processes(ctx)
		return err == nil && len(ps) == 2 && ps[1].Seen.After(firstSeen)
	})

	hb.stop(t)
	got, err := b.Processes(ctx)
	if err != nil || len(got) != 1 || got[0].ID != "a:1" {
		t.Fatalf("Processes after stopping b = %+v, %v; want only a:1 (deleted on stop, not left to expire)", got, err)
	}
}

func TestHeartbeatRejectsBadArguments(t *testing.T) {
	c, keys := redistest.New(t)
	b := status.NewBoard(c, keys)
	tests := []struct {
		name       string
		p          status.Process
		every, ttl time.Duration
		want       string
	}{
		{"no id", status.Process{}, time.Second, 3 * time.Second, "process id"},
		{"ttl not longer than the interval", status.Process{ID: "x"}, time.Second, time.Second, "every < ttl"},
		{"zero interval", status.Process{ID: "x"}, 0, time.Second, "every < ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Heartbeat(context.Background(), tt.p, tt.every, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Heartbeat = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestHeartbeatKeepsGoingWhileRedisIsDown(t *testing.T) {
	srv := redistest.StartServer(t)
	c, err := redisconn.New(redisconn.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	b := status.NewBoard(c, redisconn.NewKeys("status-test"))
	var mu sync.Mutex
	writes := 0
	b.Now = func() time.Time { // called once per write attempt
		mu.Lock()
		defer mu.Unlock()
		writes++
		return time.Now()
	}
	attempts := func() int { mu.Lock(); defer mu.Unlock(); return writes }
	hb := startHeartbeat(t, b, status.Process{ID: "h:1"}, 10*time.Millisecond, time.Second)
	pollUntil(t, 5*time.Second, "a first heartbeat", func() bool {
		ps, err := b.Processes(context.Background())
		return err == nil && len(ps) == 1
	})
	srv.Kill()
	after := attempts()
	pollUntil(t, 30*time.Second, "more write attempts with Redis down", func() bool { return attempts() >= after+3 })
	select {
	case err := <-hb.done:
		t.Fatalf("Heartbeat returned %v while Redis was down, want it to keep trying", err)
	default:
	}
}

func TestCronRunsKeepTheLastAndTheRecentRuns(t *testing.T) {
	c, keys := redistest.New(t)
	b := status.NewBoard(c, keys)
	ctx := context.Background()
	if runs, err := b.CronRuns(ctx); err != nil || len(runs) != 0 {
		t.Fatalf("CronRuns with nothing recorded = %+v, %v; want empty", runs, err)
	}
	base := time.Date(2026, 1, 2, 3, 15, 0, 0, time.UTC)
	const total = status.RecentRuns + 5
	for i := 1; i <= total; i++ {
		r := status.CronRun{Task: "check_dns", Started: base.Add(time.Duration(i) * time.Hour), Duration: time.Duration(i) * time.Millisecond,
			OK: i%2 == 0, Token: int64(100 + i), Owner: "h:1:x"}
		if !r.OK {
			r.Error = fmt.Sprintf("failure %d", i)
		}
		if err := b.RecordCronRun(ctx, r); err != nil {
			t.Fatalf("RecordCronRun %d: %v", i, err)
		}
	}
	if err := b.RecordCronRun(ctx, status.CronRun{Task: "action_deletions", Started: base, OK: true, Token: 7}); err != nil {
		t.Fatal(err)
	}
	runs, err := b.CronRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Task != "action_deletions" || runs[1].Task != "check_dns" {
		t.Fatalf("tasks = %+v, want action_deletions then check_dns", runs)
	}
	dns := runs[1]
	if dns.Last.Token != 100+total || dns.Last.OK != (total%2 == 0) || !dns.Last.Started.Equal(base.Add(total*time.Hour)) ||
		dns.Last.Duration != total*time.Millisecond {
		t.Fatalf("last run = %+v, want run %d", dns.Last, total)
	}
	if len(dns.Recent) != status.RecentRuns {
		t.Fatalf("recent runs = %d, want %d", len(dns.Recent), status.RecentRuns)
	}
	for i, r := range dns.Recent {
		if want := int64(100 + total - i); r.Token != want {
			t.Fatalf("recent[%d].Token = %d, want %d (newest first)", i, r.Token, want)
		}
	}
	for i, r := range dns.Recent[:2] {
		n := total - i
		want := ""
		if n%2 != 0 {
			want = fmt.Sprintf("failure %d", n)
		}
		if r.Error != want || r.OK != (want == "") {
			t.Fatalf("recent[%d] = ok %v error %q, want error %q", i, r.OK, r.Error, want)
		}
	}
	j, err := json.Marshal(runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"task":"check_dns"`, `"last":`, `"recent":`, `"duration_ns":`, `"token":125`} {
		if !strings.Contains(string(j), key) {
			t.Errorf("JSON %s lacks %s", j[:200], key)
		}
	}
}

func TestRecordCronRunRejectsBadTaskNames(t *testing.T) {
	c, keys := redistest.New(t)
	b := status.NewBoard(c, keys)
	for _, name := range []string{"", "a:runs", "two words"} {
		if err := b.RecordCronRun(context.Background(), status.CronRun{Task: name}); err == nil {
			t.Errorf("RecordCronRun(task %q) = nil, want an error", name)
		}
	}
}
