package queue_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

// The queue's whole life cycle (Enqueue, Read, Ack, Retry and MoveDue,
// Claim, dead letters, Missing, Inspect; every Lua script) works on a Redis
// Cluster and behind Sentinel through redisconn's one client; under
// Cluster every key the queue wrote hashes to the slot of the {prefix} tag.
func TestQueueOnClusterAndSentinel(t *testing.T) {
	for _, tc := range redistest.Topologies() {
		t.Run(tc.Name, func(t *testing.T) {
			c, keys := redistest.NewOn(t, tc.Start(t))
			lifeCycle(t, c, keys)
			if _, ok := c.(*redis.ClusterClient); ok != (tc.Name == "cluster") {
				t.Fatalf("client %T for %s", c, tc.Name)
			}
			if tc.Name == "cluster" {
				assertOneSlot(t, c, keys)
			}
		})
	}
}

func lifeCycle(t *testing.T, c redis.UniversalClient, keys redisconn.Keys) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	q := queue.New(queue.Options{Client: c, Keys: keys, MaxDeliveries: 2, Now: func() time.Time { return now }})
	if err := q.Init(ctx); err != nil {
		t.Fatalf("Init: %v", err)
	}
	want := jobs(1, 3)
	if err := q.Enqueue(ctx, queue.Outgoing, want...); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	got, err := q.Read(ctx, queue.Outgoing, "a", 10, 100*time.Millisecond)
	if err != nil || !slices.Equal(jobsOf(got), want) {
		t.Fatalf("Read = %+v, %v; want %+v", jobsOf(got), err, want)
	}
	if err := q.Ack(ctx, queue.Outgoing, got[0]); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := q.Retry(ctx, queue.Outgoing, got[1], now.Add(-time.Second)); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	if n, err := q.MoveDue(ctx, now, 100); err != nil || n != 1 {
		t.Fatalf("MoveDue = %d, %v; want 1", n, err)
	}
	miss, err := q.Missing(ctx, queue.Outgoing, []int64{1, 2, 3, 4})
	if err != nil || !slices.Equal(miss, []int64{1, 4}) {
		t.Fatalf("Missing = %v, %v; want [1 4] (acked, never sent)", miss, err)
	}
	again, err := q.Read(ctx, queue.Outgoing, "a", 10, 100*time.Millisecond)
	if err != nil || len(again) != 1 || again[0].Job != want[1] {
		t.Fatalf("Read after MoveDue = %+v, %v; want job 2", jobsOf(again), err)
	}
	// Job 3 is pending with "a" since the first Read: claim it once
	// (delivery 2), then once more sends it to the dead letters. Job 2 was
	// read just now, also for the first time since it was moved back.
	claimed, dead, err := q.Claim(ctx, queue.Outgoing, "b", 0, 10)
	if err != nil || len(claimed) != 2 || len(dead) != 0 {
		t.Fatalf("Claim = %d claimed, %d dead, %v; want 2, 0", len(claimed), len(dead), err)
	}
	_, dead, err = q.Claim(ctx, queue.Outgoing, "c", 0, 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("second Claim = %d dead, %v; want 2", len(dead), err)
	}
	dls, err := q.DeadLetters(ctx, 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("DeadLetters = %+v, %v; want 2", dls, err)
	}
	st, err := q.Inspect(ctx)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if st.Dead != 2 || st.Inflight != 0 {
		t.Fatalf("Inspect = %+v; want 2 dead, nothing inflight", st)
	}
}

// assertOneSlot checks that every key under keys' prefix hashes to one
// slot, so that a script may name any of them.
func assertOneSlot(t *testing.T, c redis.UniversalClient, keys redisconn.Keys) {
	t.Helper()
	ctx := context.Background()
	found, err := redisconn.ScanKeys(ctx, c, keys.Pattern())
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 4 {
		t.Fatalf("found %d keys under %s, want streams, retry set, inflight and dead", len(found), keys.Prefix())
	}
	slots := map[int64][]string{}
	for _, k := range found {
		s, err := c.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[s] = append(slots[s], k)
	}
	if len(slots) != 1 {
		t.Fatalf("keys span %d slots: %v", len(slots), slots)
	}
}

// A Sentinel failover of the master (SENTINEL FAILOVER) under a steady
// enqueue/read/ack load loses nothing: a write the old master took but did
// not replicate in time is found by reconciliation (Missing, then Enqueue
// again, as the requeuer does from SQL), and every job is acked. The test
// reports how long reads stopped succeeding.
func TestSentinelFailoverUnderLoadLosesNothing(t *testing.T) {
	s := redistest.StartSentinel(t)
	c, keys := redistest.NewOn(t, s.Options())
	q := queue.New(queue.Options{Client: c, Keys: keys})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := q.Init(ctx); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		produced []int64
		acked    = map[int64]bool{}
		lastRead = time.Now()
		maxGap   time.Duration
		errs     atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // producer: the SQL record is every id produced
		for id := int64(1); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			produced = append(produced, id)
			mu.Unlock()
			if err := q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: id}); err != nil {
				errs.Add(1)
				time.Sleep(10 * time.Millisecond) // back off while the master moves
			}
		}
	})
	wg.Go(func() { // consumer
		for {
			select {
			case <-stop:
				return
			default:
			}
			ds, err := q.Read(ctx, queue.Outgoing, "w", 100, 50*time.Millisecond)
			if err != nil {
				errs.Add(1)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if len(ds) == 0 {
				continue
			}
			if err := q.Ack(ctx, queue.Outgoing, ds...); err != nil {
				errs.Add(1)
				continue // left pending; reconciliation or a later claim finds it
			}
			mu.Lock()
			for _, d := range ds {
				acked[d.Job.ID] = true
			}
			if gap := time.Since(lastRead); gap > maxGap {
				maxGap = gap
			}
			lastRead = time.Now()
			mu.Unlock()
		}
	})
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitUntil(t, "500 jobs acked before the failover", 30*time.Second, func() bool { return ackedCount() >= 500 })
	old, err := s.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failedAt := time.Now()
	waitUntil(t, "a new master", 30*time.Second, func() bool {
		m, err := s.Master(ctx)
		return err == nil && m != old
	})
	promoted := time.Since(failedAt)
	before := ackedCount()
	waitUntil(t, "500 more jobs acked after the failover", 30*time.Second, func() bool { return ackedCount() >= before+500 })
	close(stop)
	wg.Wait()

	// Reconciliation from the record: ids not acked and unknown to Redis
	// are enqueued again; drain until every id is acked.
	mu.Lock()
	all := slices.Clone(produced)
	mu.Unlock()
	reconciled := 0
	waitUntil(t, "every produced job acked", 30*time.Second, func() bool {
		var open []int64
		for _, id := range all {
			if !acked[id] {
				open = append(open, id)
			}
		}
		if len(open) == 0 {
			return true
		}
		miss, err := q.Missing(ctx, queue.Outgoing, open)
		if err != nil {
			return false
		}
		js := make([]queue.Job, len(miss))
		for i, id := range miss {
			js[i] = queue.Job{ID: id}
		}
		if len(js) > 0 {
			if err := q.Enqueue(ctx, queue.Outgoing, js...); err != nil {
				return false
			}
			reconciled += len(js)
		}
		// Entries pending with the consumer whose ack was lost.
		claimed, _, _ := q.Claim(ctx, queue.Outgoing, "w", 0, 1000)
		ds, _ := q.Read(ctx, queue.Outgoing, "w", 1000, 50*time.Millisecond)
		ds = append(ds, claimed...)
		if len(ds) > 0 && q.Ack(ctx, queue.Outgoing, ds...) == nil {
			for _, d := range ds {
				acked[d.Job.ID] = true
			}
		}
		return false
	})
	t.Logf("SENTINEL FAILOVER under load: %d jobs, all acked; new master after %s; reads paused at most %s; %d Redis errors; %d re-dispatched by reconciliation (machine shared, figures noisy)",
		len(all), promoted.Round(time.Millisecond), maxGap.Round(time.Millisecond), errs.Load(), reconciled)
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
