package webhookworker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhook"
	"github.com/postalgo/postal/daemon/webhookworker"
)

var (
	keyOnce sync.Once
	testKey *signing.Key
)

func signingKey(t testing.TB) *signing.Key {
	keyOnce.Do(func() {
		priv, err := signing.Generate(signing.MinBits)
		if err != nil {
			t.Fatal(err)
		}
		if testKey, err = signing.NewKey(priv); err != nil {
			t.Fatal(err)
		}
	})
	return testKey
}

// clock is an injectable clock tests move by hand.
type clock struct{ v atomic.Int64 }

func (c *clock) set(t time.Time)          { c.v.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration)      { c.v.Add(int64(d)) }
func (c *clock) now() time.Time           { return time.Unix(0, c.v.Load()) }
func newClock(t time.Time) *clock         { c := &clock{}; c.set(t); return c }
func (c *clock) since(t0 time.Time) int64 { return int64(c.now().Sub(t0) / time.Minute) }

// env is a store, a queue on real Redis and a server with a webhook.
type env struct {
	t      testing.TB
	store  *store.Store
	queue  *queue.Queue
	server *store.Server
	hookID int64
	// newQueue builds another queue on the same Redis keys.
	newQueue func(o queue.Options) *queue.Queue
}

func newEnv(t testing.TB, s *store.Store) *env {
	t.Helper()
	client, keys := redistest.New(t)
	q := queue.New(queue.Options{Client: client, Keys: keys})
	if err := q.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	fx := storetest.NewFixture(t, s, "example.com", "")
	h, err := s.CreateWebhook(context.Background(), fx.Server.ID, store.NewWebhook{Name: "h", URL: "https://h.test/", AllEvents: true, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	newQueue := func(o queue.Options) *queue.Queue {
		o.Client, o.Keys = client, keys
		return queue.New(o)
	}
	return &env{t: t, store: s, queue: q, server: fx.Server, hookID: h.ID, newQueue: newQueue}
}

// add stores n requests for url and dispatches them.
func (e *env) add(url string, n int) []int64 {
	e.t.Helper()
	ctx := context.Background()
	var all []int64
	for start := 0; start < n; start += 1000 {
		reqs := make([]store.NewWebhookRequest, min(1000, n-start))
		for i := range reqs {
			reqs[i] = store.NewWebhookRequest{ServerID: e.server.ID, WebhookID: e.hookID, URL: url, Event: webhook.EventMessageSent,
				Payload: fmt.Sprintf(`{"n":%d}`, start+i)}
		}
		ids, err := e.store.InsertWebhookRequests(ctx, reqs)
		if err != nil {
			e.t.Fatal(err)
		}
		jobs := make([]queue.Job, len(ids))
		for i, id := range ids {
			jobs[i] = queue.Job{ID: id}
		}
		if err := e.queue.Enqueue(ctx, queue.Webhooks, jobs...); err != nil {
			e.t.Fatal(err)
		}
		all = append(all, ids...)
	}
	return all
}

// start runs a worker until the test ends; o's Store, Queue and Sender
// default to the env's and a real client.
func (e *env) start(o webhookworker.Options) *webhookworker.Worker {
	e.t.Helper()
	if o.Store == nil {
		o.Store = e.store
	}
	if o.Queue == nil {
		o.Queue = e.queue
	}
	if o.Sender == nil {
		c, err := webhook.NewClient(webhook.ClientOptions{Signer: signingKey(e.t), UserAgent: "Postal/test"})
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(c.Close)
		o.Sender = c
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	w, err := webhookworker.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			e.t.Errorf("run: %v", err)
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func (e *env) attempts(f store.WebhookAttemptFilter) []*store.WebhookAttempt {
	e.t.Helper()
	f.ServerID, f.Limit = e.server.ID, 1000
	out, err := e.store.WebhookAttempts(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) pending() int64 {
	e.t.Helper()
	c, err := e.store.CountWebhookRequests(context.Background(), time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Total
}

// drained reports whether the webhooks stream, its pending list, the retry
// set and the inflight hash are empty and no request row is left.
func (e *env) drained() bool {
	st, err := e.queue.Inspect(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	s, _ := st.Stream(queue.Webhooks)
	return s.Length == 0 && s.Pending == 0 && st.Inflight == 0 && st.Retry.Size == 0 && e.pending() == 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// receiver counts requests by path and answers with status(path, n).
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newReceiver(t testing.TB, status func(path string, n int) int) *receiver {
	r := &receiver{hits: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.URL.Path]++
		n := r.hits[req.URL.Path]
		r.mu.Unlock()
		w.WriteHeader(status(req.URL.Path, n))
		_, _ = w.Write([]byte(strings.ToUpper(req.URL.Path)))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// newHangingServer answers nothing until release is closed, signalling
// started for each request; it returns its URL.
func newHangingServer(t testing.TB, started chan<- struct{}, release <-chan struct{}) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// newClient is a webhook client with the test signing key.
func newClient(t testing.TB) *webhook.Client {
	c, err := webhook.NewClient(webhook.ClientOptions{Signer: signingKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
