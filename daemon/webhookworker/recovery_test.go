package webhookworker_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhookworker"
)

// requeuer moves due retries back to their streams until the test ends, as
// the requeuer role does.
func requeuer(t *testing.T, q *queue.Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = q.MoveDue(ctx, time.Now(), 0)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestWorkOfADeadWorkerIsSentOnce: a worker that read an entry and claimed
// its row, then died, leaves both behind; another worker reclaims the entry
// once it has been idle for the visibility timeout, waits out the row's
// lock and sends the request exactly once.
func TestWorkOfADeadWorkerIsSentOnce(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	rcv := newReceiver(t, func(string, int) int { return 200 })
	ids := e.add(rcv.srv.URL+"/x", 1)
	ctx := context.Background()
	vt := 300 * time.Millisecond
	if ds, err := e.queue.Read(ctx, queue.Webhooks, "dead-worker", 10, 0); err != nil || len(ds) != 1 {
		t.Fatalf("read = %v, %v", ds, err)
	}
	now := time.Now()
	if got, err := s.ClaimWebhookRequests(ctx, ids, "dead-worker:1", now, now.Add(vt)); err != nil || len(got) != 1 {
		t.Fatalf("claim = %v, %v", got, err)
	}
	requeuer(t, e.queue)
	e.start(webhookworker.Options{VisibilityTimeout: vt})
	waitFor(t, 20*time.Second, "the request to be delivered", e.drained)
	if n := rcv.count("/x"); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestEntryDeliveredTooOftenIsAbandoned: an entry handed out
// worker.max_deliveries times without an outcome is dead-lettered and its
// request deleted with a logged "dead" attempt.
func TestEntryDeliveredTooOftenIsAbandoned(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	ids := e.add("http://127.0.0.1:9/never", 1)
	ctx := context.Background()
	if ds, err := e.queue.Read(ctx, queue.Webhooks, "dead-worker", 10, 0); err != nil || len(ds) != 1 {
		t.Fatalf("read = %v, %v", ds, err)
	}
	q := e.newQueue(queue.Options{MaxDeliveries: 1})
	e.start(webhookworker.Options{Queue: q, VisibilityTimeout: 100 * time.Millisecond})
	waitFor(t, 20*time.Second, "the request to be abandoned", e.drained)
	log := e.attempts(store.WebhookAttemptFilter{})
	if len(log) != 1 || log[0].Result != "dead" || log[0].WillRetry {
		t.Fatalf("log = %+v", log)
	}
	if reqs, _ := s.WebhookRequests(ctx, ids); len(reqs) != 0 {
		t.Errorf("request still stored: %+v", reqs)
	}
}

// TestShutdownHandsWaitingWorkBack: requests waiting for a busy receiver
// when the worker stops are unlocked and put back for any worker, not left
// locked until the visibility timeout.
func TestShutdownHandsWaitingWorkBack(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 10)
	hang := newHangingServer(t, started, release)
	e.add(hang+"/slow", 5)
	w, err := webhookworker.New(webhookworker.Options{Store: s, Queue: e.queue, Sender: newClient(t), PerDestination: 1,
		Grace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c, err := s.CountWebhookRequests(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The four that waited are unlocked and due; the one abandoned
	// mid-attempt keeps its lock until it expires.
	if c.Total != 5 || c.Locked != 1 || c.Due != 5 {
		t.Errorf("after shutdown: %+v, want 5 requests, 1 locked", c)
	}
	st, err := e.queue.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Retry.Size != 4 {
		t.Errorf("retry set holds %d, want the 4 waiting requests", st.Retry.Size)
	}
}
