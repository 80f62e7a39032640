package intake_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

func submission(serverID int64, rcpts ...string) store.Submission {
	sub := store.Submission{Raw: []byte("From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n")}
	for _, r := range rcpts {
		sub.Messages = append(sub.Messages, store.NewMessage{ServerID: serverID, Scope: store.ScopeOutgoing,
			RcptTo: r, MailFrom: "a@example.com", Queue: true, QueueDomain: "dest.test"})
	}
	return sub
}

// Concurrent submitters share transactions, every one gets its own rows
// back, and every queued row is dispatched exactly once.
func TestConcurrentSubmissionsAreStoredAndDispatched(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := storetest.NewFixture(t, s, "example.com", "")
		rdb, keys := redistest.New(t)
		q := queue.New(queue.Options{Client: rdb, Keys: keys})
		if err := q.Init(ctx); err != nil {
			t.Fatal(err)
		}
		in := intake.New(intake.Options{Store: s, Queue: q, MaxBatch: 16})
		done := make(chan error, 1)
		go func() { done <- in.Run(ctx) }()

		const n = 40
		var wg sync.WaitGroup
		results := make([][]store.Accepted, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				acc, err := in.Submit(ctx, submission(f.Server.ID, fmt.Sprintf("r%d@dest.test", i), fmt.Sprintf("s%d@dest.test", i)))
				if err != nil {
					t.Error(err)
				}
				results[i] = acc
			}()
		}
		wg.Wait()
		ids := map[int64]bool{}
		for i, acc := range results {
			if len(acc) != 2 || acc[0].RcptTo != fmt.Sprintf("r%d@dest.test", i) || acc[0].QueuedID == 0 {
				t.Fatalf("submission %d got %+v", i, acc)
			}
			for _, a := range acc {
				ids[a.QueuedID] = true
			}
		}
		var got []queue.Delivery
		deadline := time.Now().Add(10 * time.Second)
		for len(got) < 2*n && time.Now().Before(deadline) {
			ds, err := q.Read(ctx, queue.Outgoing, "c1", 100, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ds...)
		}
		if len(got) != 2*n {
			t.Fatalf("dispatched %d entries, want %d", len(got), 2*n)
		}
		for _, d := range got {
			if !ids[d.Job.ID] || d.Job.Domain != "dest.test" {
				t.Fatalf("unexpected entry %+v", d)
			}
			delete(ids, d.Job.ID)
		}
		// Every stored message is counted in the per-minute counters, by the
		// dispatcher after the commit.
		var accepted int64
		for deadline := time.Now().Add(10 * time.Second); accepted != 2*n && time.Now().Before(deadline); {
			m, err := q.ReadMinutes(ctx, time.Now().Add(-time.Minute), 2)
			if err != nil {
				t.Fatal(err)
			}
			accepted = m.Counts[0].Accepted + m.Counts[1].Accepted
			if accepted != 2*n {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if accepted != 2*n {
			t.Fatalf("counted %d accepted, want %d", accepted, 2*n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := in.Submit(context.Background(), submission(f.Server.ID, "late@dest.test")); !errors.Is(err, intake.ErrStopped) {
			t.Fatalf("submit after stop = %v, want ErrStopped", err)
		}
	})
}

// When Redis is unreachable the submission is still durable (and Submit
// succeeds): reconciliation dispatches it later.
func TestRedisDownStillStoresDurably(t *testing.T) {
	s := storetest.SQLite(t)
	f := storetest.NewFixture(t, s, "example.com", "")
	srv := redistest.StartServer(t)
	rdb, err := redisconn.New(redisconn.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	q := queue.New(queue.Options{Client: rdb, Keys: redisconn.NewKeys("intake-test")})
	srv.Kill()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := intake.New(intake.Options{Store: s, Queue: q, CommitTimeout: 3 * time.Second})
	go func() { _ = in.Run(ctx) }()
	acc, err := in.Submit(ctx, submission(f.Server.ID, "x@dest.test"))
	if err != nil {
		t.Fatalf("submit with Redis down: %v", err)
	}
	due, err := s.DueQueued(ctx, time.Now().Add(time.Second), 0, 10)
	if err != nil || len(due) != 1 || due[0].ID != acc[0].QueuedID {
		t.Fatalf("queued rows = %+v, %v; want the submission's row, due", due, err)
	}
}

// A database failure fails every submission of the batch and stores nothing.
func TestDatabaseFailureFailsSubmit(t *testing.T) {
	s := storetest.SQLite(t)
	f := storetest.NewFixture(t, s, "example.com", "")
	rdb, keys := redistest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := intake.New(intake.Options{Store: s, Queue: queue.New(queue.Options{Client: rdb, Keys: keys})})
	go func() { _ = in.Run(ctx) }()
	_ = s.Close()
	if _, err := in.Submit(ctx, submission(f.Server.ID, "x@dest.test")); err == nil {
		t.Fatal("submit on a closed database succeeded")
	}
}

// A Redis that accepts connections but never answers does not delay the
// answer: Submit returns once SQL has committed (CommitTimeout is an hour,
// so a Submit that waited for the dispatch would hang the test). Run returns
// once the dispatch has failed, and the row is left to reconciliation.
func TestHungRedisDoesNotDelaySubmit(t *testing.T) {
	s := storetest.SQLite(t)
	f := storetest.NewFixture(t, s, "example.com", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	rdb, err := redisconn.New(redisconn.Options{URL: "redis://" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	q := queue.New(queue.Options{Client: rdb, Keys: redisconn.NewKeys("intake-hung")})
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	in := intake.New(intake.Options{Store: s, Queue: q, CommitTimeout: time.Hour, Registerer: reg})
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	for i := range 3 {
		acc, err := in.Submit(ctx, submission(f.Server.ID, fmt.Sprintf("x%d@dest.test", i)))
		if err != nil || len(acc) != 1 || acc[0].QueuedID == 0 {
			t.Fatalf("submit %d with a hung Redis = %+v, %v", i, acc, err)
		}
	}
	// The dispatch has not failed yet (go-redis gives up only after its
	// read timeout): the answers did not wait for it.
	if n := dispatchErrors(t, reg); n != 0 {
		t.Fatalf("%v dispatch errors before the answers; Submit waited for Redis", n)
	}
	due, err := s.DueQueued(ctx, time.Now().Add(time.Second), 0, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("queued rows = %d, %v; want 3", len(due), err)
	}
	cancel()
	ln.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := dispatchErrors(t, reg); n == 0 {
		t.Fatal("no dispatch error counted after Redis went away")
	}
}

func dispatchErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "postal_intake_dispatch_errors_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no postal_intake_dispatch_errors_total metric")
	return 0
}

// Stopping dispatches every committed batch before Run returns.
func TestStopDispatchesEverythingCommitted(t *testing.T) {
	s := storetest.SQLite(t)
	f := storetest.NewFixture(t, s, "example.com", "")
	rdb, keys := redistest.New(t)
	q := queue.New(queue.Options{Client: rdb, Keys: keys})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := q.Init(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	in := intake.New(intake.Options{Store: s, Queue: q, MaxBatch: 4})
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := in.Submit(ctx, submission(f.Server.ID, fmt.Sprintf("r%d@dest.test", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := q.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss, _ := st.Stream(queue.Outgoing); ss.Length != n {
		t.Fatalf("outgoing stream holds %d entries after Run returned, want %d", ss.Length, n)
	}
}

// Work committed elsewhere (the worker's outcome commits: bounces, webhook
// requests) reaches its streams through the same dispatcher; after the
// intake stopped it is left to reconciliation, without blocking.
func TestDispatchSendsCommittedWorkToItsStreams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := storetest.SQLite(t)
	rdb, keys := redistest.New(t)
	q := queue.New(queue.Options{Client: rdb, Keys: keys})
	if err := q.Init(ctx); err != nil {
		t.Fatal(err)
	}
	in := intake.New(intake.Options{Store: s, Queue: q})
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	in.Dispatch(map[queue.Kind][]queue.Job{queue.Outgoing: {{ID: 7, Domain: "dest.test"}}, queue.Webhooks: {{ID: 8}, {ID: 9}}})
	for kind, want := range map[queue.Kind][]int64{queue.Outgoing: {7}, queue.Webhooks: {8, 9}} {
		var got []int64
		for deadline := time.Now().Add(10 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
			ds, err := q.Read(ctx, kind, "c1", 10, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				got = append(got, d.Job.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s stream got %v, want %v", kind, got, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	in.Dispatch(map[queue.Kind][]queue.Job{queue.Outgoing: {{ID: 10}}}) // stopped: dropped, not blocked
	if missing, err := q.Missing(context.Background(), queue.Outgoing, []int64{10}); err != nil || len(missing) != 1 {
		t.Fatalf("dispatched after stop: missing %v, %v", missing, err)
	}
}
