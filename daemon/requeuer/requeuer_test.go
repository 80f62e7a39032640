package requeuer_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/requeuer"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/worker"
)

type env struct {
	s      *store.Store
	f      storetest.Fixture
	q      *queue.Queue
	client redis.UniversalClient
	keys   redisconn.Keys
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := storetest.SQLite(t)
	url := redistest.DefaultURL
	if u := os.Getenv(redistest.URLEnv); u != "" {
		url = u
	}
	c, err := redisconn.New(redisconn.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	keys := redisconn.NewKeys("rqtest-" + redistest.RandomHex(6))
	t.Cleanup(func() {
		if err := redistest.DeleteAll(context.Background(), c, keys); err != nil {
			t.Errorf("cleanup redis: %v", err)
		}
		_ = c.Close()
	})
	q := queue.New(queue.Options{Client: c, Keys: keys})
	if err := q.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{s: s, f: storetest.NewFixture(t, s, "example.com", ""), q: q, client: c, keys: keys}
}

func (e *env) insert(t testing.TB, n int, domains ...string) []store.Accepted {
	t.Helper()
	var out []store.Accepted
	for start := 0; start < n; start += 200 {
		var msgs []store.NewMessage
		for i := start; i < min(n, start+200); i++ {
			d := domains[i%len(domains)]
			msgs = append(msgs, store.NewMessage{ServerID: e.f.Server.ID, Scope: store.ScopeOutgoing,
				RcptTo: fmt.Sprintf("r%d@%s", i, d), MailFrom: "s@example.com", Queue: true, QueueDomain: d})
		}
		acc, err := e.s.InsertSubmissions(context.Background(), []store.Submission{{Raw: []byte("Subject: t\r\n\r\nt\r\n"), Messages: msgs}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, acc[0]...)
	}
	return out
}

func jobsOf(acc []store.Accepted) []queue.Job {
	jobs := make([]queue.Job, len(acc))
	for i, a := range acc {
		jobs[i] = queue.Job{ID: a.QueuedID, Domain: a.Domain}
	}
	return jobs
}

func (e *env) outgoing(t testing.TB) (queue.StreamStats, queue.Stats) {
	t.Helper()
	st, err := e.q.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := st.Stream(queue.Outgoing)
	if !ok {
		t.Fatal("no outgoing stream")
	}
	return s, st
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}

// noLease runs fn once with a term the test ends by calling end.
type noLease struct {
	end      chan struct{}
	returned chan struct{}
}

func (l *noLease) Run(ctx context.Context, fn func(ctx context.Context, token int64) error) error {
	term, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-l.end:
		case <-ctx.Done():
		}
		cancel()
	}()
	_ = fn(term, 42)
	close(l.returned)
	<-ctx.Done()
	return nil
}

func (e *env) requeuer(t *testing.T, l requeuer.Lease, now func() time.Time) *requeuer.Requeuer {
	t.Helper()
	r, err := requeuer.New(requeuer.Options{
		Config: config.Requeuer{Interval: 0.05, ReconcileInterval: 0.2},
		Store:  e.s, Queue: e.q, Lease: l, Settle: time.Millisecond, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMoveDueOnceMovesOnlyDueRetries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	if err := e.q.Schedule(ctx, queue.Outgoing, now.Add(-time.Second), queue.Job{ID: 1}, queue.Job{ID: 2}); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Schedule(ctx, queue.Outgoing, now.Add(time.Hour), queue.Job{ID: 3}); err != nil {
		t.Fatal(err)
	}
	r := e.requeuer(t, &noLease{}, func() time.Time { return now })
	n, err := r.MoveDueOnce(ctx)
	if err != nil || n != 2 {
		t.Fatalf("MoveDueOnce = %d, %v; want 2", n, err)
	}
	s, st := e.outgoing(t)
	if s.Length != 2 || st.Retry.Size != 1 {
		t.Fatalf("stream %d retry %d; want 2 and 1", s.Length, st.Retry.Size)
	}
}

func TestReconcileOnceDispatchesOnlyLostDueWork(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	acc := e.insert(t, 6, "a.test")
	inStream, inRetry, lost, notDue, locked, lostToo := acc[0], acc[1], acc[2], acc[3], acc[4], acc[5]
	if err := e.q.Enqueue(ctx, queue.Outgoing, jobsOf([]store.Accepted{inStream})...); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Schedule(ctx, queue.Outgoing, time.Now().Add(time.Hour), jobsOf([]store.Accepted{inRetry})...); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Second)
	if _, err := e.s.ClaimQueued(ctx, []int64{notDue.QueuedID, locked.QueuedID}, "w", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.RecordOutcomes(ctx, []store.Outcome{store.Retry(
		&store.QueuedMessage{ID: notDue.QueuedID, MessageID: notDue.MessageID, LockedBy: "w"}, now.Add(time.Hour), "")}); err != nil {
		t.Fatal(err)
	}
	r := e.requeuer(t, &noLease{}, func() time.Time { return now })
	res, err := r.ReconcileOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Due and unlocked: inStream, inRetry (due in SQL; Redis says later),
	// lost, lostToo. Missing from Redis: lost, lostToo.
	if res.Scanned != 4 || res.Dispatched != 2 {
		t.Fatalf("ReconcileOnce = %+v; want 4 scanned, 2 dispatched", res)
	}
	ds, err := e.q.Read(ctx, queue.Outgoing, "c", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, d := range ds {
		got[d.Job.ID] = true
	}
	if len(ds) != 3 || !got[inStream.QueuedID] || !got[lost.QueuedID] || !got[lostToo.QueuedID] || ds[1].Job.Domain != "a.test" {
		t.Fatalf("stream holds %+v; want the original entry and the two lost rows", ds)
	}
	if again, err := r.ReconcileOnce(ctx); err != nil || again.Dispatched != 0 {
		t.Fatalf("second reconcile = %+v, %v; want nothing dispatched", again, err)
	}
}

func TestReconcileOnceDispatchesLostWebhookRequests(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := store.NewWebhookRequest{ServerID: e.f.Server.ID, URL: "https://hooks.test/", Event: "MessageSent", Payload: "{}"}
	ids, err := e.s.InsertWebhookRequests(ctx, []store.NewWebhookRequest{req, req})
	if err != nil {
		t.Fatal(err)
	}
	// The first was dispatched; the second's entry was lost.
	if err := e.q.Enqueue(ctx, queue.Webhooks, queue.Job{ID: ids[0]}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Minute)
	r := e.requeuer(t, &noLease{}, func() time.Time { return now })
	res, err := r.ReconcileOnce(ctx)
	if err != nil || res.Dispatched != 1 {
		t.Fatalf("ReconcileOnce = %+v, %v; want the lost request dispatched", res, err)
	}
	ds, err := e.q.Read(ctx, queue.Webhooks, "c", 10, 0)
	if err != nil || len(ds) != 2 || ds[0].Job.ID != ids[0] || ds[1].Job.ID != ids[1] {
		t.Fatalf("webhooks stream holds %+v, %v; want both requests once", ds, err)
	}
	if again, err := r.ReconcileOnce(ctx); err != nil || again.Dispatched != 0 {
		t.Fatalf("second reconcile = %+v, %v; want nothing dispatched", again, err)
	}
}

func TestReconcileLeavesFreshRowsToIntake(t *testing.T) {
	e := newEnv(t)
	acc := e.insert(t, 1, "a.test")
	r, err := requeuer.New(requeuer.Options{Store: e.s, Queue: e.q, Lease: &noLease{}, Settle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.ReconcileOnce(context.Background())
	if err != nil || res.Scanned != 0 {
		t.Fatalf("reconcile = %+v, %v; want row %d (younger than Settle) left alone", res, err, acc[0].QueuedID)
	}
}

func TestRunActsDuringATermAndStopsWhenItEnds(t *testing.T) {
	e := newEnv(t)
	e.insert(t, 3, "a.test")
	l := &noLease{end: make(chan struct{}), returned: make(chan struct{})}
	reg := prometheus.NewRegistry()
	r, err := requeuer.New(requeuer.Options{
		Config: config.Requeuer{Interval: 0.05, ReconcileInterval: 0.2},
		Store:  e.s, Queue: e.q, Lease: l, Settle: time.Millisecond, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, 10*time.Second, "lost rows dispatched", func() bool {
		s, _ := e.outgoing(t)
		return s.Length == 3
	})
	if got := leading(t, reg); got != 1 {
		t.Fatalf("leading = %v during the term, want 1", got)
	}
	close(l.end)
	select {
	case <-l.returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the term's function did not return after the term ended")
	}
	if got := leading(t, reg); got != 0 {
		t.Fatalf("leading = %v after the term, want 0", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func leading(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "postal_requeuer_leading" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("postal_requeuer_leading not registered")
	return 0
}

// Redis loses every key of our prefix while 1,000 messages are queued and
// being worked on: once the requeuer reconciles, every message is
// processed, none twice.
func TestRedisLossWithAThousandQueuedMessages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	acc := e.insert(t, 1000, "a.test", "b.test", "c.test", "d.test")
	if err := e.q.Enqueue(ctx, queue.Outgoing, jobsOf(acc)...); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	// Each destination batch takes a few milliseconds, as a real
	// connection would, so the loss lands mid-way.
	h := worker.HandlerFunc(func(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
		work := time.NewTimer(20 * time.Millisecond)
		defer work.Stop()
		select {
		case <-work.C:
		case <-ctx.Done():
		}
		outs := make([]store.Outcome, len(batch))
		for i := range outs {
			outs[i] = store.Sent(batch[i], store.NewDelivery{})
		}
		handled.Add(int64(len(batch)))
		return outs
	})
	w, err := worker.New(worker.Options{
		Config: config.Worker{Threads: 2, VisibilityTimeout: 5, BatchSize: 10},
		Postal: config.Postal{BatchQueuedMessages: true},
		Store:  e.s, Queue: e.q, Handlers: map[queue.Kind]worker.Handler{queue.Outgoing: h},
		ReadBlock: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	l := lease.New(lease.Options{Client: e.client, Keys: e.keys, Name: "requeuer", TTL: 3 * time.Second})
	r, err := requeuer.New(requeuer.Options{
		Config: config.Requeuer{Interval: 0.2, ReconcileInterval: 1},
		Store:  e.s, Queue: e.q, Lease: l, Settle: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	doneW, doneR := make(chan error, 1), make(chan error, 1)
	go func() { doneW <- w.Run(runCtx) }()
	waitFor(t, 30*time.Second, "100 messages handled", func() bool { return handled.Load() >= 100 })
	if err := redistest.DeleteAll(ctx, e.client, e.keys); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	t.Logf("deleted every key of the prefix after %d of 1000 messages were handled", handled.Load())
	go func() { doneR <- r.Run(runCtx) }()
	sentAll := func() bool {
		n, err := e.s.CountQueued(ctx, time.Now())
		return err == nil && n.Total == 0
	}
	waitFor(t, 60*time.Second, "every queued message processed", sentAll)
	t.Logf("all 1000 processed %s after the loss", time.Since(lost).Round(time.Millisecond))
	cancel()
	for _, ch := range []chan error{doneW, doneR} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	dups := 0
	for _, a := range acc {
		ds, err := e.s.Deliveries(ctx, a.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		sentN := 0
		for _, d := range ds {
			if d.Status == store.StatusSent {
				sentN++
			}
		}
		if sentN == 0 {
			t.Errorf("message %d never sent", a.MessageID)
		}
		if sentN > 1 {
			dups++
		}
	}
	t.Logf("duplicates (messages with more than one Sent delivery): %d; handler calls per message: %.3f",
		dups, float64(handled.Load())/1000)
	if dups != 0 {
		t.Fatalf("%d messages delivered twice", dups)
	}
}
