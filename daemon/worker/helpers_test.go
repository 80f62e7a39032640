package worker_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/worker"
)

// env is a migrated SQLite store with a fixture, and a queue under a
// private Redis prefix deleted when the test ends.
type env struct {
	s      *store.Store
	f      storetest.Fixture
	q      *queue.Queue
	client redis.UniversalClient
	keys   redisconn.Keys
	prefix string
	dbPath string
}

func newEnv(t testing.TB, maxDeliveries int64) *env {
	t.Helper()
	opts := storetest.SQLiteOptions(t)
	s, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e := &env{s: s, f: storetest.NewFixture(t, s, "example.com", ""), dbPath: opts.Path}
	e.prefix = "wtest-" + redistest.RandomHex(6)
	e.client, e.keys = newRedis(t, e.prefix)
	e.q = newQueue(t, e.client, e.keys, maxDeliveries)
	return e
}

func redisURL() string {
	if u := os.Getenv(redistest.URLEnv); u != "" {
		return u
	}
	return redistest.DefaultURL
}

// newRedis connects to the shared test Redis under prefix and deletes
// every key under it when the test ends.
func newRedis(t testing.TB, prefix string) (redis.UniversalClient, redisconn.Keys) {
	t.Helper()
	c, err := redisconn.New(redisconn.Options{URL: redisURL()})
	if err != nil {
		t.Fatal(err)
	}
	keys := redisconn.NewKeys(prefix)
	t.Cleanup(func() {
		if err := redistest.DeleteAll(context.Background(), c, keys); err != nil {
			t.Errorf("cleanup redis: %v", err)
		}
		_ = c.Close()
	})
	if err := redisconn.Ping(context.Background(), c); err != nil {
		t.Fatalf("redis: %v", err)
	}
	return c, keys
}

func newQueue(t testing.TB, c redis.UniversalClient, keys redisconn.Keys, maxDeliveries int64) *queue.Queue {
	t.Helper()
	q := queue.New(queue.Options{Client: c, Keys: keys, MaxDeliveries: maxDeliveries})
	if err := q.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q
}

// insert stores n outgoing messages, spread round-robin over domains,
// with queued rows; it does not dispatch them.
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

// enqueue dispatches accepted messages to the outgoing stream.
func (e *env) enqueue(t testing.TB, acc []store.Accepted) {
	t.Helper()
	jobs := make([]queue.Job, len(acc))
	for i, a := range acc {
		jobs[i] = queue.Job{ID: a.QueuedID, Domain: a.Domain}
	}
	if err := e.q.Enqueue(context.Background(), queue.Outgoing, jobs...); err != nil {
		t.Fatal(err)
	}
}

// sentCounts returns, per message, how many Sent deliveries it has.
func (e *env) sentCounts(t testing.TB, acc []store.Accepted) map[int64]int {
	t.Helper()
	out := make(map[int64]int, len(acc))
	for _, a := range acc {
		ds, err := e.s.Deliveries(context.Background(), a.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Status == store.StatusSent {
				out[a.MessageID]++
			}
		}
	}
	return out
}

// countStatus counts accepted messages whose status is status.
func (e *env) countStatus(t testing.TB, acc []store.Accepted, status string) int {
	t.Helper()
	ids := make([]int64, len(acc))
	for i, a := range acc {
		ids[i] = a.MessageID
	}
	n := 0
	for start := 0; start < len(ids); start += 500 {
		ms, err := e.s.Messages(context.Background(), ids[start:min(len(ids), start+500)])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Status == status {
				n++
			}
		}
	}
	return n
}

func (e *env) stats(t testing.TB) (queue.StreamStats, queue.Stats) {
	t.Helper()
	st, err := e.q.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := st.Stream(queue.Outgoing)
	if !ok {
		t.Fatal("no outgoing stream stats")
	}
	return s, st
}

// waitFor polls cond every 20ms until it holds or the deadline passes.
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

// recorder is a Handler that "sends" every message: it records the call
// and returns a Sent outcome with a delivery row.
type recorder struct {
	mu      sync.Mutex
	batches [][]*store.QueuedMessage
	calls   map[int64]int
	// result, when set, decides the outcome instead of Sent.
	result func(q *store.QueuedMessage) store.Outcome
}

func (r *recorder) Handle(_ context.Context, batch []*store.QueuedMessage) []store.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[int64]int{}
	}
	r.batches = append(r.batches, batch)
	outs := make([]store.Outcome, len(batch))
	for i, q := range batch {
		r.calls[q.MessageID]++
		if r.result != nil {
			outs[i] = r.result(q)
			continue
		}
		outs[i] = sent(q)
	}
	return outs
}

func sent(q *store.QueuedMessage) store.Outcome {
	return store.Sent(q, store.NewDelivery{Output: "250 ok"})
}

func (r *recorder) snapshot() (batches [][]*store.QueuedMessage, calls map[int64]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls = make(map[int64]int, len(r.calls))
	for k, v := range r.calls {
		calls[k] = v
	}
	return append([][]*store.QueuedMessage(nil), r.batches...), calls
}

// workerOptions are fast test settings.
func (e *env) workerOptions(h worker.Handler, vis time.Duration) worker.Options {
	return worker.Options{
		Config:    config.Worker{Threads: 2, VisibilityTimeout: config.Seconds(vis.Seconds()), BatchSize: 20},
		Postal:    config.Postal{BatchQueuedMessages: true},
		Store:     e.s,
		Queue:     e.q,
		Handlers:  map[queue.Kind]worker.Handler{queue.Outgoing: h},
		Owner:     "test:" + strings.ReplaceAll(e.prefix, "-", ""),
		ReadBlock: 100 * time.Millisecond,
	}
}

// start runs w until the test ends (or stop is called) and returns stop,
// which cancels it and waits for Run to return.
func start(t testing.TB, w *worker.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return within 30s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
