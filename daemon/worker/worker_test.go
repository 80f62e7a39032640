package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/worker"
)

func TestNewRejectsBadOptions(t *testing.T) {
	e := newEnv(t, 10)
	h := &recorder{}
	for _, tc := range []struct {
		name string
		edit func(o *worker.Options)
		want string
	}{
		{"no store", func(o *worker.Options) { o.Store = nil }, "Store and Queue are required"},
		{"no queue", func(o *worker.Options) { o.Queue = nil }, "Store and Queue are required"},
		{"webhooks have no queued-message rows", func(o *worker.Options) {
			o.Handlers = map[queue.Kind]worker.Handler{queue.Webhooks: h}
		}, `kind "webhooks" has no queued-message scope`},
		{"nil handler", func(o *worker.Options) { o.Handlers = map[queue.Kind]worker.Handler{queue.Outgoing: nil} }, "nil handler"},
		{"negative threads", func(o *worker.Options) { o.Config.Threads = -1 }, "negative setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.workerOptions(h, time.Minute)
			tc.edit(&o)
			_, err := worker.New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestWorkerDeliversEveryMessageOnceAndEmptiesTheStream(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 300, "a.test", "b.test", "c.test", "d.test", "e.test")
	e.enqueue(t, acc)
	h := &recorder{}
	reg := prometheus.NewRegistry()
	o := e.workerOptions(h, time.Minute)
	o.Registerer = reg
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, w)
	waitFor(t, 30*time.Second, "300 messages sent", func() bool { return e.countStatus(t, acc, store.StatusSent) == len(acc) })
	// Every entry is acked once its rows are done, including the entries of
	// rows that were delivered by batching with another entry.
	waitFor(t, 30*time.Second, "stream and inflight empty", func() bool {
		s, st := e.stats(t)
		return s.Length == 0 && s.Pending == 0 && st.Inflight == 0 && st.Retry.Size == 0
	})
	stop()
	// Every outcome is counted once: per minute in Redis (with the acks)
	// and per hour in SQL (with the outcomes).
	m, err := e.q.ReadMinutes(context.Background(), time.Now().Add(-5*time.Minute), 6)
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	for _, c := range m.Counts {
		sent += c.Sent
	}
	if sent != int64(len(acc)) {
		t.Fatalf("per-minute counters: %d sent, want %d", sent, len(acc))
	}
	hours, err := e.s.Statistics(context.Background(), e.f.Server.ID, store.PeriodHour, time.Now().Add(-time.Hour), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := hours[0].Sent + hours[1].Sent; got != int64(len(acc)) {
		t.Fatalf("hourly statistics: %d sent, want %d", got, len(acc))
	}
	for id, n := range e.sentCounts(t, acc) {
		if n != 1 {
			t.Errorf("message %d has %d Sent deliveries, want 1", id, n)
		}
	}
	batches, calls := h.snapshot()
	if len(calls) != len(acc) {
		t.Fatalf("handler saw %d messages, want %d", len(calls), len(acc))
	}
	for _, b := range batches {
		for _, q := range b[1:] {
			if q.Domain != b[0].Domain {
				t.Fatalf("a batch mixed %s and %s", b[0].Domain, q.Domain)
			}
		}
	}
	if got := counter(t, reg, "postal_worker_processed_total"); got != float64(len(acc)) {
		t.Fatalf("processed_total = %v, want %d", got, len(acc))
	}
	if got := counter(t, reg, "postal_worker_acked_total"); got != float64(len(acc)) {
		t.Fatalf("acked_total = %v, want %d (one ack per entry)", got, len(acc))
	}
}

// counter sums every series of the counter vector name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestWorkerBatchesReadyMessagesForTheSameDomain(t *testing.T) {
	for _, tc := range []struct {
		name      string
		batching  bool
		wantFirst int
	}{
		{"batch_queued_messages tops the batch up to batch_size", true, 20},
		{"without batching a batch is what was read", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 10)
			acc := e.insert(t, 30, "bulk.test")
			// Only one entry is dispatched; the other 29 rows are due but
			// have no entry of their own yet.
			e.enqueue(t, acc[:1])
			h := &recorder{}
			o := e.workerOptions(h, time.Minute)
			o.Config.Threads = 1
			o.Postal.BatchQueuedMessages = tc.batching
			w, err := worker.New(o)
			if err != nil {
				t.Fatal(err)
			}
			start(t, w)
			waitFor(t, 10*time.Second, "the first batch", func() bool {
				b, _ := h.snapshot()
				return len(b) > 0
			})
			waitFor(t, 10*time.Second, "the entry acked", func() bool {
				s, _ := e.stats(t)
				return s.Length == 0
			})
			b, _ := h.snapshot()
			if len(b[0]) != tc.wantFirst {
				t.Fatalf("first batch has %d messages, want %d", len(b[0]), tc.wantFirst)
			}
			if got := e.countStatus(t, acc, store.StatusSent); got != tc.wantFirst {
				t.Fatalf("%d messages sent, want %d", got, tc.wantFirst)
			}
		})
	}
}

func TestWorkerRetryOutcomeKeepsTheWorkInTheRetrySet(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 3, "slow.test")
	e.enqueue(t, acc[:1]) // the other two arrive by batching: no entry of their own
	later := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	h := &recorder{result: func(q *store.QueuedMessage) store.Outcome {
		return store.SoftFail(q, later, store.NewDelivery{Output: "451 later"})
	}}
	w, err := worker.New(e.workerOptions(h, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	waitFor(t, 10*time.Second, "three retries scheduled", func() bool {
		s, st := e.stats(t)
		return st.Retry.Size == 3 && s.Length == 0
	})
	_, st := e.stats(t)
	if st.Retry.NextDue == nil || !st.Retry.NextDue.Equal(later) {
		t.Fatalf("retry set next due = %v, want %v", st.Retry.NextDue, later)
	}
	if st.Inflight != 3 {
		t.Fatalf("inflight = %d, want 3 (retries stay inflight)", st.Inflight)
	}
	qs, err := e.s.QueuedByIDs(context.Background(), []int64{acc[0].QueuedID, acc[1].QueuedID, acc[2].QueuedID})
	if err != nil || len(qs) != 3 {
		t.Fatalf("queued rows = %d, %v", len(qs), err)
	}
	for _, q := range qs {
		if q.Attempts != 1 || q.LockedBy != "" || !q.RetryAfter.Equal(later) {
			t.Errorf("row %d = attempts %d locked %q due %v; want 1, unlocked, %v", q.ID, q.Attempts, q.LockedBy, q.RetryAfter, later)
		}
	}
}

func TestWorkerSettlesEntriesWhoseRowCannotBeClaimed(t *testing.T) {
	ctx := context.Background()
	future := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, tc := range []struct {
		name string
		// prepare changes the row before its entry is read.
		prepare   func(t *testing.T, e *env, a store.Accepted)
		wantRetry bool
		wantDue   time.Time
	}{
		{"row gone: acked", func(t *testing.T, e *env, a store.Accepted) {
			if err := e.s.FailQueued(ctx, a.QueuedID, "gone for the test"); err != nil {
				t.Fatal(err)
			}
		}, false, time.Time{}},
		{"row locked by another worker: acked", func(t *testing.T, e *env, a store.Accepted) {
			if got, err := e.s.ClaimQueued(ctx, []int64{a.QueuedID}, "other", time.Now(), future); err != nil || len(got) != 1 {
				t.Fatalf("claim: %d, %v", len(got), err)
			}
		}, false, time.Time{}},
		{"row not due: kept in the retry set until due", func(t *testing.T, e *env, a store.Accepted) {
			if got, err := e.s.ClaimQueued(ctx, []int64{a.QueuedID}, "other", time.Now(), future); err != nil || len(got) != 1 {
				t.Fatalf("claim: %d, %v", len(got), err)
			}
			if _, err := e.s.RecordOutcomes(ctx, []store.Outcome{store.Retry(
				&store.QueuedMessage{ID: a.QueuedID, MessageID: a.MessageID, LockedBy: "other"}, future, "")}); err != nil {
				t.Fatal(err)
			}
		}, true, future},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 10)
			acc := e.insert(t, 1, "x.test")
			tc.prepare(t, e, acc[0])
			e.enqueue(t, acc)
			h := &recorder{}
			w, err := worker.New(e.workerOptions(h, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			start(t, w)
			waitFor(t, 10*time.Second, "the entry settled", func() bool {
				s, _ := e.stats(t)
				return s.Length == 0
			})
			_, st := e.stats(t)
			if tc.wantRetry {
				if st.Retry.Size != 1 || st.Retry.NextDue == nil || !st.Retry.NextDue.Equal(tc.wantDue) || st.Inflight != 1 {
					t.Fatalf("retry set = %+v inflight %d; want the entry due %v, still inflight", st.Retry, st.Inflight, tc.wantDue)
				}
			} else if st.Retry.Size != 0 || st.Inflight != 0 {
				t.Fatalf("retry set %d inflight %d; want the entry acked", st.Retry.Size, st.Inflight)
			}
			if _, calls := h.snapshot(); len(calls) != 0 {
				t.Fatalf("handler called for an unclaimable row: %v", calls)
			}
		})
	}
}

func TestWorkerReclaimsEntriesOfADeadConsumer(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 5, "r.test")
	e.enqueue(t, acc)
	// A consumer reads the entries and dies without acking.
	got, err := e.q.Read(context.Background(), queue.Outgoing, "dead-consumer", 10, time.Second)
	if err != nil || len(got) != 5 {
		t.Fatalf("dead consumer read %d, %v", len(got), err)
	}
	h := &recorder{}
	o := e.workerOptions(h, 300*time.Millisecond)
	o.Postal.BatchQueuedMessages = false
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	waitFor(t, 10*time.Second, "reclaimed messages sent", func() bool { return e.countStatus(t, acc, store.StatusSent) == 5 })
	waitFor(t, 10*time.Second, "stream empty", func() bool {
		s, st := e.stats(t)
		return s.Length == 0 && st.Inflight == 0
	})
}

func TestWorkerDeadLettersAnEntryDeliveredTooOften(t *testing.T) {
	e := newEnv(t, 2)
	acc := e.insert(t, 1, "dead.test")
	e.enqueue(t, acc)
	// Two deliveries without an outcome: the worker's reclaim finds the
	// entry at its limit.
	ctx := context.Background()
	if got, err := e.q.Read(ctx, queue.Outgoing, "crashy-1", 1, time.Second); err != nil || len(got) != 1 {
		t.Fatalf("read: %d, %v", len(got), err)
	}
	waitFor(t, 5*time.Second, "entry idle", func() bool {
		c, _, err := e.q.Claim(ctx, queue.Outgoing, "crashy-2", 50*time.Millisecond, 1)
		return err == nil && len(c) == 1
	})
	h := &recorder{}
	reg := prometheus.NewRegistry()
	o := e.workerOptions(h, 200*time.Millisecond)
	o.Registerer = reg
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	waitFor(t, 10*time.Second, "message failed", func() bool { return e.countStatus(t, acc, store.StatusHardFail) == 1 })
	m, err := e.s.Message(ctx, acc[0].MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Details, "Given up after 2 deliveries") {
		t.Fatalf("details = %q, want the dead-letter reason", m.Details)
	}
	dl, err := e.q.DeadLetters(ctx, 10)
	if err != nil || len(dl) != 1 || dl[0].Job.ID != acc[0].QueuedID {
		t.Fatalf("dead letters = %+v, %v", dl, err)
	}
	if _, calls := h.snapshot(); len(calls) != 0 {
		t.Fatalf("handler ran for a dead letter: %v", calls)
	}
	if got := counter(t, reg, "postal_worker_dead_total"); got != 1 {
		t.Fatalf("dead_total = %v, want 1", got)
	}
}

// blockingHandler blocks every call until release is closed (or, when
// ignoreCtx is false, its context ends).
type blockingHandler struct {
	started   chan struct{}
	release   chan struct{}
	ignoreCtx bool
	calls     atomic.Int32
}

func (b *blockingHandler) Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
	if b.calls.Add(1) == 1 {
		close(b.started)
	}
	if b.ignoreCtx {
		<-b.release
	} else {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil
		}
	}
	outs := make([]store.Outcome, len(batch))
	for i := range outs {
		outs[i] = sent(batch[i])
	}
	return outs
}

func TestWorkerShutdownFinishesInFlightBatches(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 4, "s.test")
	e.enqueue(t, acc)
	h := &blockingHandler{started: make(chan struct{}), release: make(chan struct{})}
	o := e.workerOptions(h, time.Minute)
	o.Config.Threads = 1
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-h.started
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a handler was still running within the grace period")
	default:
	}
	close(h.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.countStatus(t, acc, store.StatusSent); got != 4 {
		t.Fatalf("%d sent after drain, want 4", got)
	}
	if s, _ := e.stats(t); s.Length != 0 {
		t.Fatalf("stream length %d after drain, want 0 (acked)", s.Length)
	}
}

func TestWorkerAbandonsAHandlerPastTheGracePeriod(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 1, "stuck.test")
	e.enqueue(t, acc)
	h := &blockingHandler{started: make(chan struct{}), release: make(chan struct{}), ignoreCtx: true}
	defer close(h.release)
	o := e.workerOptions(h, time.Minute)
	o.Grace = 200 * time.Millisecond
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-h.started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the grace period")
	}
	// Nothing recorded, nothing acked: the entry waits to be reclaimed and
	// the row stays locked until the visibility timeout.
	if s, _ := e.stats(t); s.Pending != 1 {
		t.Fatalf("pending = %d, want 1", s.Pending)
	}
	qs, err := e.s.QueuedByIDs(context.Background(), []int64{acc[0].QueuedID})
	if err != nil || len(qs) != 1 || qs[0].LockedBy == "" {
		t.Fatalf("row = %+v, %v; want still locked", qs, err)
	}
}

func TestWorkerSurvivesABrokenHandler(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle func(batch []*store.QueuedMessage) []store.Outcome
	}{
		{"panic", func([]*store.QueuedMessage) []store.Outcome { panic("boom") }},
		{"too few outcomes", func([]*store.QueuedMessage) []store.Outcome { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 10)
			bad := e.insert(t, 1, "bad.test")
			good := e.insert(t, 1, "good.test")
			e.enqueue(t, bad)
			e.enqueue(t, good)
			h := worker.HandlerFunc(func(_ context.Context, batch []*store.QueuedMessage) []store.Outcome {
				if batch[0].Domain == "bad.test" {
					return tc.handle(batch)
				}
				return []store.Outcome{sent(batch[0])}
			})
			w, err := worker.New(e.workerOptions(h, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			start(t, w)
			waitFor(t, 10*time.Second, "the good message sent", func() bool { return e.countStatus(t, good, store.StatusSent) == 1 })
			waitFor(t, 10*time.Second, "only the bad entry pending", func() bool {
				s, _ := e.stats(t)
				return s.Length == 1 && s.Pending == 1
			})
			if got := e.countStatus(t, bad, store.StatusPending); got != 1 {
				t.Fatalf("bad message status changed")
			}
		})
	}
}

func TestWorkerKeepsReadingWhileRedisFails(t *testing.T) {
	e := newEnv(t, 10)
	h := &recorder{}
	o := e.workerOptions(h, time.Minute)
	o.Config.Threads = 1
	fq := &failingQueue{Queue: e.q}
	o.Queue = fq
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, 10*time.Second, "a second read after the first failed", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned %v on a Redis failure; want it to keep trying", err)
		default:
		}
		return fq.reads.Load() >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type failingQueue struct {
	*queue.Queue
	reads atomic.Int32
}

func (f *failingQueue) Read(context.Context, queue.Kind, string, int, time.Duration) ([]queue.Delivery, error) {
	f.reads.Add(1)
	return nil, errors.New("redis down")
}

func (f *failingQueue) Claim(context.Context, queue.Kind, string, time.Duration, int) ([]queue.Delivery, []queue.Delivery, error) {
	return nil, nil, errors.New("redis down")
}

// A batch that takes longer than the visibility timeout is kept alive
// (locks extended, entries touched): a second worker does not reclaim it,
// and the message is handled exactly once.
func TestSlowBatchIsNotReclaimedByAnotherWorker(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 1, "slow.example")
	const vis = time.Second
	var mu sync.Mutex
	calls := 0
	started := make(chan struct{})
	slow := worker.HandlerFunc(func(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
		mu.Lock()
		calls += len(batch)
		first := calls == len(batch)
		mu.Unlock()
		if first {
			close(started)
			select { // 2.5 visibility timeouts: without keep-alive the entry and the lock both expire
			case <-time.After(5 * vis / 2):
			case <-ctx.Done():
			}
		}
		outs := make([]store.Outcome, len(batch))
		for i := range outs {
			outs[i] = sent(batch[i])
		}
		return outs
	})
	o1 := e.workerOptions(slow, vis)
	w1, err := worker.New(o1)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w1)
	e.enqueue(t, acc)
	<-started
	o2 := e.workerOptions(slow, vis)
	o2.Owner += "-second"
	o2.ReclaimEvery = 100 * time.Millisecond
	w2, err := worker.New(o2)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w2)
	waitFor(t, 15*time.Second, "the slow message sent", func() bool { return e.countStatus(t, acc, store.StatusSent) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("handler ran %d times for one message; want 1 (the slow batch was reclaimed)", calls)
	}
}

// recordingDispatcher keeps what the worker dispatched after its commits.
type recordingDispatcher struct {
	mu   sync.Mutex
	jobs map[queue.Kind][]queue.Job
}

func (d *recordingDispatcher) Dispatch(jobs map[queue.Kind][]queue.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, js := range jobs {
		d.jobs[k] = append(d.jobs[k], js...)
	}
}

func (d *recordingDispatcher) count(k queue.Kind) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs[k])
}

// A handler's effects are committed with its outcomes, and the new work
// they create (a bounce's queued row, webhook requests) is handed to the
// dispatcher only after the commit.
func TestWorkerCommitsEffectsThenDispatchesTheNewWork(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 2, "fx.test")
	e.enqueue(t, acc)
	h := &recorder{result: func(q *store.QueuedMessage) store.Outcome {
		return store.HardFail(q, store.NewDelivery{Output: "550 no"}).With(store.Effects{
			Suppress: []store.NewSuppression{{ServerID: e.f.Server.ID, Address: fmt.Sprintf("gone%d@fx.test", q.ID),
				Reason: "hard fail", KeepUntil: time.Now().Add(time.Hour)}},
			Bounces: []store.Submission{{Raw: []byte("Subject: bounce\r\n\r\nx\r\n"), Messages: []store.NewMessage{{
				ServerID: e.f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "s@example.com", Bounce: true, Queue: true,
				QueueDomain: "example.com"}}}},
			Webhooks: []store.NewWebhookRequest{{ServerID: e.f.Server.ID, URL: "https://h.test/", Event: "MessageDeliveryFailed", Payload: "{}"}},
		})
	}}
	d := &recordingDispatcher{jobs: map[queue.Kind][]queue.Job{}}
	o := e.workerOptions(h, time.Minute)
	o.Dispatcher = d
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	waitFor(t, 10*time.Second, "both outcomes and their new work dispatched", func() bool {
		return d.count(queue.Outgoing) == 2 && d.count(queue.Webhooks) == 2
	})
	if n := e.countStatus(t, acc, store.StatusHardFail); n != 2 {
		t.Fatalf("%d messages HardFail, want 2", n)
	}
	sup, err := e.s.ServerSuppressions(context.Background(), e.f.Server.ID)
	if err != nil || len(sup) != 2 {
		t.Fatalf("suppressions %+v, %v", sup, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rows, err := e.s.QueuedByIDs(context.Background(), []int64{d.jobs[queue.Outgoing][0].ID, d.jobs[queue.Outgoing][1].ID})
	if err != nil || len(rows) != 2 || rows[0].Domain != "example.com" {
		t.Fatalf("dispatched bounce rows %+v, %v", rows, err)
	}
}

// A process whose heartbeat is alive keeps its work, however idle its
// consumers look; once the heartbeat is gone its locks are released and its
// consumers handed over.
func TestTakeoverOnlyOfProcessesWithoutAHeartbeat(t *testing.T) {
	e := newEnv(t, 10)
	ctx := context.Background()
	acc := e.insert(t, 3, "busy.test")
	e.enqueue(t, acc)
	release := make(chan struct{})
	defer close(release)
	var started atomic.Int64
	busy := worker.HandlerFunc(func(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
		started.Add(int64(len(batch)))
		select {
		case <-release:
		case <-ctx.Done():
		}
		outs := make([]store.Outcome, len(batch))
		for i, q := range batch {
			outs[i] = sent(q)
		}
		return outs
	})
	ao := e.workerOptions(busy, time.Hour)
	ao.Owner = "alive:1"
	a, err := worker.New(ao)
	if err != nil {
		t.Fatal(err)
	}
	start(t, a)
	waitFor(t, 10*time.Second, "the first process to hold all three", func() bool { return started.Load() == 3 })
	board := status.NewBoard(e.client, e.keys)
	hbCtx, stopHB := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		_ = board.Heartbeat(hbCtx, status.Process{ID: "alive:1"}, 100*time.Millisecond, time.Minute)
	}()
	waitFor(t, 5*time.Second, "the heartbeat", func() bool {
		alive, err := board.Alive(ctx, []string{"alive:1"})
		return err == nil && alive["alive:1"]
	})

	bo := e.workerOptions(&recorder{}, time.Hour)
	bo.Owner, bo.Liveness, bo.ReapMinIdle = "other:2", board, time.Nanosecond
	b, err := worker.New(bo)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.ReapOnceForTest(ctx); len(got) != 0 {
		t.Fatalf("took over %v from a process with a live heartbeat", got)
	}
	if c, _ := e.s.CountQueued(ctx, time.Now()); c.Locked != 3 {
		t.Fatalf("locked rows %d, want the live process's 3", c.Locked)
	}

	stopHB() // a stopped heartbeat is deleted: the process counts as dead
	<-hbDone
	got := b.ReapOnceForTest(ctx)
	if len(got[queue.Outgoing]) == 0 {
		t.Fatalf("took over %v, want the dead process's consumers", got)
	}
	for _, name := range got[queue.Outgoing] {
		if !strings.HasPrefix(name, "alive:1-outgoing-") {
			t.Errorf("took over consumer %q", name)
		}
	}
	if c, _ := e.s.CountQueued(ctx, time.Now()); c.Locked != 0 {
		t.Fatalf("locked rows %d after the takeover, want 0", c.Locked)
	}
}
