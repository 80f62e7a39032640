package queue_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
)

type fixture struct {
	q    *queue.Queue
	c    redis.UniversalClient
	keys redisconn.Keys
}

func newFixture(t testing.TB, o queue.Options) fixture {
	t.Helper()
	c, keys := redistest.New(t)
	o.Client, o.Keys = c, keys
	q := queue.New(o)
	if err := q.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return fixture{q: q, c: c, keys: keys}
}

func jobs(from, n int64) []queue.Job {
	js := make([]queue.Job, n)
	for i := range js {
		id := from + int64(i)
		js[i] = queue.Job{ID: id, Domain: "d" + string(rune('a'+id%26)) + ".example"}
	}
	return js
}

func jobsOf(ds []queue.Delivery) []queue.Job {
	out := make([]queue.Job, len(ds))
	for i, d := range ds {
		out[i] = d.Job
	}
	return out
}

func ids(js []queue.Job) []int64 {
	out := make([]int64, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

func mustInspect(t *testing.T, q *queue.Queue) queue.Stats {
	t.Helper()
	st, err := q.Inspect(context.Background())
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return st
}

func streamStats(t *testing.T, st queue.Stats, k queue.Kind) queue.StreamStats {
	t.Helper()
	s, ok := st.Stream(k)
	if !ok {
		t.Fatalf("no stats for %s in %+v", k, st)
	}
	return s
}

func TestEnqueueReadAckRoundTrip(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	want := jobs(1, 3)
	if err := f.q.Enqueue(ctx, queue.Outgoing, want...); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "c1", 10, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := jobsOf(ds); !slices.Equal(got, want) {
		t.Fatalf("Read jobs = %+v, want %+v", got, want)
	}
	for _, d := range ds {
		if d.Count != 1 || d.Kind != queue.Outgoing || d.StreamID == "" {
			t.Fatalf("delivery %+v: want count 1, kind outgoing and a stream id", d)
		}
	}
	if miss, err := f.q.Missing(ctx, queue.Outgoing, ids(want)); err != nil || len(miss) != 0 {
		t.Fatalf("Missing while pending = %v, %v; want none", miss, err)
	}
	if st := mustInspect(t, f.q); st.Inflight != 3 || streamStats(t, st, queue.Outgoing).Pending != 3 {
		t.Fatalf("before ack: %+v, want 3 inflight and 3 pending", st)
	}
	if err := f.q.Ack(ctx, queue.Outgoing, ds...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	st := mustInspect(t, f.q)
	out := streamStats(t, st, queue.Outgoing)
	if st.Inflight != 0 || out.Length != 0 || out.Pending != 0 {
		t.Fatalf("after ack: %+v, want an empty stream and no inflight", st)
	}
	miss, err := f.q.Missing(ctx, queue.Outgoing, ids(want))
	if err != nil || !slices.Equal(miss, ids(want)) {
		t.Fatalf("Missing after ack = %v, %v; want %v", miss, err, ids(want))
	}
	if again, err := f.q.Read(ctx, queue.Outgoing, "c1", 10, 0); err != nil || again != nil {
		t.Fatalf("second Read = %+v, %v; want nothing", again, err)
	}
}

func TestEnqueueOfNothingTouchesNothing(t *testing.T) {
	c, keys := redistest.New(t)
	q := queue.New(queue.Options{Client: c, Keys: keys})
	ctx := context.Background()
	if err := q.Enqueue(ctx, queue.Incoming); err != nil {
		t.Fatalf("Enqueue(): %v", err)
	}
	if err := q.Schedule(ctx, queue.Incoming, time.Now()); err != nil {
		t.Fatalf("Schedule(): %v", err)
	}
	found, err := redisconn.ScanKeys(ctx, c, keys.Pattern())
	if err != nil || len(found) != 0 {
		t.Fatalf("keys after empty calls = %q, %v; want none", found, err)
	}
}

func TestInvalidArgumentsAreRejected(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	d := queue.Delivery{StreamID: "1-1", Kind: queue.Incoming, Job: queue.Job{ID: 1}, Count: 1}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"enqueue to an unknown kind", func() error { return f.q.Enqueue(ctx, "bogus", queue.Job{ID: 1}) }, "unknown kind"},
		{"ack with a delivery of another kind", func() error { return f.q.Ack(ctx, queue.Outgoing, d) }, "of kind"},
		{"retry with a delivery of another kind", func() error { return f.q.Retry(ctx, queue.Outgoing, d, time.Now()) }, "of kind"},
		{"read without a consumer", func() error { _, err := f.q.Read(ctx, queue.Outgoing, "", 1, 0); return err }, "consumer"},
		{"read of zero entries", func() error { _, err := f.q.Read(ctx, queue.Outgoing, "c", 0, 0); return err }, "positive"},
		{"claim without a consumer", func() error { _, _, err := f.q.Claim(ctx, queue.Outgoing, "", 0, 1); return err }, "consumer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReadBlockIsAlwaysBounded(t *testing.T) {
	f := newFixture(t, queue.Options{})
	tests := []struct {
		name  string
		block time.Duration
		min   time.Duration
	}{
		{"zero block does not wait", 0, 0},
		{"negative block does not wait", -time.Second, 0},
		{"sub-millisecond block still ends", time.Microsecond, 0},
		{"positive block waits about that long", 100 * time.Millisecond, 90 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			type result struct {
				ds  []queue.Delivery
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				ds, err := f.q.Read(ctx, queue.Webhooks, "c", 5, tt.block)
				done <- result{ds, err}
			}()
			select {
			case r := <-done:
				if r.err != nil || r.ds != nil {
					t.Fatalf("Read = %+v, %v; want nil, nil on timeout", r.ds, r.err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Read(block=%v) still blocked after 5s", tt.block)
			}
			if el := time.Since(start); el < tt.min || el > tt.min+2*time.Second {
				t.Fatalf("Read(block=%v) took %v, want about %v", tt.block, el, tt.min)
			}
		})
	}
}

func TestReadWakesUpWhenAnEntryArrives(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	got := make(chan []queue.Delivery, 1)
	errc := make(chan error, 1)
	go func() {
		ds, err := f.q.Read(ctx, queue.Incoming, "c", 5, 10*time.Second)
		errc <- err
		got <- ds
	}()
	// Enqueue until the blocked reader sees something; the reader may not
	// have started blocking yet when the first entry lands, which is fine.
	if err := f.q.Enqueue(ctx, queue.Incoming, queue.Job{ID: 42}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		ds := <-got
		if err != nil || len(ds) != 1 || ds[0].Job.ID != 42 {
			t.Fatalf("Read = %+v, %v; want job 42", ds, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Read did not return the new entry within 5s")
	}
}

func TestClaimTakesEntriesOfADeadConsumer(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	want := jobs(10, 4)
	if err := f.q.Enqueue(ctx, queue.Outgoing, want...); err != nil {
		t.Fatal(err)
	}
	// c1 reads and dies without acking.
	if ds, err := f.q.Read(ctx, queue.Outgoing, "c1", 10, 0); err != nil || len(ds) != 4 {
		t.Fatalf("Read = %d entries, %v; want 4", len(ds), err)
	}
	// Not idle long enough: nothing to claim.
	claimed, dead, err := f.q.Claim(ctx, queue.Outgoing, "c2", time.Hour, 10)
	if err != nil || len(claimed) != 0 || len(dead) != 0 {
		t.Fatalf("Claim(minIdle 1h) = %v, %v, %v; want nothing", claimed, dead, err)
	}
	// A limit smaller than the backlog takes the oldest first.
	claimed, _, err = f.q.Claim(ctx, queue.Outgoing, "c2", 0, 3)
	if err != nil || !slices.Equal(jobsOf(claimed), want[:3]) {
		t.Fatalf("Claim(limit 3) = %+v, %v; want %+v", jobsOf(claimed), err, want[:3])
	}
	for _, d := range claimed {
		if d.Count != 2 {
			t.Fatalf("claimed %+v: count = %d, want 2", d, d.Count)
		}
	}
	rest, _, err := f.q.Claim(ctx, queue.Outgoing, "c2", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The first three were just claimed by c2 and are pending again with
	// idle 0, so a minIdle-0 claim sees all four; c2 now owns them all.
	if len(rest) != 4 {
		t.Fatalf("second Claim = %d entries, want 4", len(rest))
	}
	st := streamStats(t, mustInspect(t, f.q), queue.Outgoing)
	for _, c := range st.Consumers {
		if c.Name == "c1" && c.Pending != 0 || c.Name == "c2" && c.Pending != 4 {
			t.Fatalf("consumers = %+v, want c1 with 0 and c2 with 4 pending", st.Consumers)
		}
	}
	if err := f.q.Ack(ctx, queue.Outgoing, rest...); err != nil {
		t.Fatal(err)
	}
	if st := mustInspect(t, f.q); st.Inflight != 0 || streamStats(t, st, queue.Outgoing).Pending != 0 {
		t.Fatalf("after ack: %+v, want nothing pending or inflight", st)
	}
}

func TestClaimSendsOverDeliveredEntriesToDead(t *testing.T) {
	f := newFixture(t, queue.Options{MaxDeliveries: 2})
	ctx := context.Background()
	want := jobs(100, 2)
	if err := f.q.Enqueue(ctx, queue.Webhooks, want...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Read(ctx, queue.Webhooks, "c1", 10, 0); err != nil { // delivery 1
		t.Fatal(err)
	}
	claimed, dead, err := f.q.Claim(ctx, queue.Webhooks, "c2", 0, 10) // delivery 2
	if err != nil || len(claimed) != 2 || len(dead) != 0 {
		t.Fatalf("first Claim = %d claimed, %d dead, %v; want 2, 0", len(claimed), len(dead), err)
	}
	claimed, dead, err = f.q.Claim(ctx, queue.Webhooks, "c3", 0, 10) // would be delivery 3
	if err != nil || len(claimed) != 0 {
		t.Fatalf("second Claim = %d claimed, %v; want 0", len(claimed), err)
	}
	if !slices.Equal(jobsOf(dead), want) {
		t.Fatalf("dead = %+v, want %+v", jobsOf(dead), want)
	}
	for _, d := range dead {
		if d.Count != 2 || d.Kind != queue.Webhooks {
			t.Fatalf("dead delivery %+v: want count 2 of webhooks", d)
		}
	}
	st := mustInspect(t, f.q)
	wh := streamStats(t, st, queue.Webhooks)
	if st.Dead != 2 || st.Inflight != 0 || wh.Length != 0 || wh.Pending != 0 {
		t.Fatalf("after dead: %+v, want 2 dead letters, empty stream, nothing inflight", st)
	}
	miss, err := f.q.Missing(ctx, queue.Webhooks, ids(want))
	if err != nil || !slices.Equal(miss, ids(want)) {
		t.Fatalf("Missing = %v, %v; want %v", miss, err, ids(want))
	}
	dls, err := f.q.DeadLetters(ctx, 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("DeadLetters = %+v, %v; want 2", dls, err)
	}
	// Newest first.
	if dls[0].Job != want[1] || dls[1].Job != want[0] {
		t.Fatalf("DeadLetters jobs = %+v, %+v; want %+v, %+v", dls[0].Job, dls[1].Job, want[1], want[0])
	}
	for _, dl := range dls {
		if dl.Kind != queue.Webhooks || dl.Count != 2 || !strings.Contains(dl.Reason, "delivered 2 times") || dl.Time.IsZero() {
			t.Fatalf("dead letter %+v: want webhooks, count 2, a reason and a time", dl)
		}
	}
}

func TestMalformedEntriesGoToDeadLetters(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	stream := f.keys.Key("stream", string(queue.Incoming))
	if err := f.c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", "not-a-number"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Enqueue(ctx, queue.Incoming, queue.Job{ID: 7}); err != nil {
		t.Fatal(err)
	}
	ds, err := f.q.Read(ctx, queue.Incoming, "c", 10, 0)
	if err != nil || len(ds) != 1 || ds[0].Job.ID != 7 {
		t.Fatalf("Read = %+v, %v; want only job 7", ds, err)
	}
	st := mustInspect(t, f.q)
	if in := streamStats(t, st, queue.Incoming); st.Dead != 1 || in.Length != 1 || in.Pending != 1 {
		t.Fatalf("after read: %+v, want the malformed entry dead and only job 7 left", st)
	}
}

func TestRetryThenMoveDueReturnsTheEntryOnce(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	now := time.Now()
	job := queue.Job{ID: 5, Domain: "x|y.example"} // a separator in the domain survives
	if err := f.q.Enqueue(ctx, queue.Outgoing, job); err != nil {
		t.Fatal(err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "c", 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Read = %v, %v", ds, err)
	}
	due := now.Add(time.Minute)
	if err := f.q.Retry(ctx, queue.Outgoing, ds[0], due); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	st := mustInspect(t, f.q)
	out := streamStats(t, st, queue.Outgoing)
	if out.Length != 0 || out.Pending != 0 || st.Retry.Size != 1 || st.Inflight != 1 ||
		st.Retry.NextDue == nil || st.Retry.NextDue.UnixMilli() != due.UnixMilli() {
		t.Fatalf("after Retry: %+v, want empty stream, 1 retry due %v, 1 inflight", st, due)
	}
	if miss, _ := f.q.Missing(ctx, queue.Outgoing, []int64{5}); len(miss) != 0 {
		t.Fatalf("Missing while in retry = %v, want none", miss)
	}
	steps := []struct {
		at   time.Time
		want int
	}{
		{now, 0},
		{due.Add(-time.Millisecond), 0},
		{due, 1},
		{due.Add(time.Hour), 0},
	}
	for _, s := range steps {
		n, err := f.q.MoveDue(ctx, s.at, 100)
		if err != nil || n != s.want {
			t.Fatalf("MoveDue(%v) = %d, %v; want %d", s.at.Sub(due), n, err, s.want)
		}
	}
	ds, err = f.q.Read(ctx, queue.Outgoing, "c", 10, 0)
	if err != nil || len(ds) != 1 || ds[0].Job != job || ds[0].Count != 1 {
		t.Fatalf("Read after MoveDue = %+v, %v; want %+v once", ds, err, job)
	}
}

func TestScheduleMakesJobsDueLater(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	due := time.Now().Add(time.Hour)
	want := jobs(1, 3)
	if err := f.q.Schedule(ctx, queue.Incoming, due, want...); err != nil {
		t.Fatal(err)
	}
	if miss, _ := f.q.Missing(ctx, queue.Incoming, ids(want)); len(miss) != 0 {
		t.Fatalf("Missing after Schedule = %v, want none", miss)
	}
	if n, err := f.q.MoveDue(ctx, due, 0); err != nil || n != 3 {
		t.Fatalf("MoveDue = %d, %v; want 3", n, err)
	}
	ds, err := f.q.Read(ctx, queue.Incoming, "c", 10, 0)
	if err != nil || !slices.Equal(jobsOf(ds), want) {
		t.Fatalf("Read = %+v, %v; want %+v", jobsOf(ds), err, want)
	}
}

func TestConcurrentMoveDueMovesEachMemberExactlyOnce(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	const total = 600
	past := time.Now().Add(-time.Second)
	all := jobs(1, total)
	if err := f.q.Schedule(ctx, queue.Outgoing, past, all[:total/2]...); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Schedule(ctx, queue.Webhooks, past, all[total/2:]...); err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		moved int
		errs  []error
	)
	for range 8 {
		wg.Go(func() {
			for {
				n, err := f.q.MoveDue(ctx, time.Now(), 7)
				mu.Lock()
				moved += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if n == 0 || err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || moved != total {
		t.Fatalf("moved %d (errors %v), want %d", moved, errs, total)
	}
	seen := map[int64]int{}
	for _, k := range []queue.Kind{queue.Outgoing, queue.Webhooks} {
		ds, err := f.q.Read(ctx, k, "c", 2*total, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			seen[d.Job.ID]++
		}
	}
	for _, j := range all {
		if seen[j.ID] != 1 {
			t.Fatalf("job %d reached its stream %d times, want 1", j.ID, seen[j.ID])
		}
	}
	if st := mustInspect(t, f.q); st.Retry.Size != 0 {
		t.Fatalf("retry set has %d members left, want 0", st.Retry.Size)
	}
}

func TestMissingReportsEveryIDAfterRedisLoss(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	all := jobs(1, 2500) // more than one HMGET chunk
	if err := f.q.Enqueue(ctx, queue.Outgoing, all[:2000]...); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Schedule(ctx, queue.Outgoing, time.Now().Add(time.Hour), all[2000:]...); err != nil {
		t.Fatal(err)
	}
	if miss, err := f.q.Missing(ctx, queue.Outgoing, ids(all)); err != nil || len(miss) != 0 {
		t.Fatalf("Missing before loss = %d ids, %v; want 0", len(miss), err)
	}
	// Inflight is per kind.
	if miss, err := f.q.Missing(ctx, queue.Incoming, ids(all[:3])); err != nil || len(miss) != 3 {
		t.Fatalf("Missing for another kind = %v, %v; want all 3", miss, err)
	}
	if err := redistest.DeleteAll(ctx, f.c, f.keys); err != nil {
		t.Fatal(err)
	}
	miss, err := f.q.Missing(ctx, queue.Outgoing, ids(all))
	if err != nil || !slices.Equal(miss, ids(all)) {
		t.Fatalf("Missing after loss = %d ids, %v; want all %d in order", len(miss), err, len(all))
	}
}

func TestReadAndClaimRecoverWhenRedisLostTheGroup(t *testing.T) {
	tests := []struct {
		name string
		lose func(f fixture, stream string) error
	}{
		{"all keys deleted", func(f fixture, _ string) error {
			return redistest.DeleteAll(context.Background(), f.c, f.keys)
		}},
		{"group destroyed, stream kept", func(f fixture, stream string) error {
			return f.c.XGroupDestroy(context.Background(), stream, f.q.Group()).Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/read", func(t *testing.T) {
			f := newFixture(t, queue.Options{})
			ctx := context.Background()
			stream := f.keys.Key("stream", string(queue.Outgoing))
			if err := tt.lose(f, stream); err != nil {
				t.Fatal(err)
			}
			// After the loss an Enqueue recreates the stream without a group.
			if err := f.q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: 1}); err != nil {
				t.Fatal(err)
			}
			ds, err := f.q.Read(ctx, queue.Outgoing, "c", 10, 0)
			if err != nil || len(ds) != 1 || ds[0].Job.ID != 1 {
				t.Fatalf("Read after loss = %+v, %v; want job 1", ds, err)
			}
		})
		t.Run(tt.name+"/claim", func(t *testing.T) {
			f := newFixture(t, queue.Options{})
			ctx := context.Background()
			stream := f.keys.Key("stream", string(queue.Outgoing))
			if err := f.q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.q.Read(ctx, queue.Outgoing, "c", 10, 0); err != nil {
				t.Fatal(err)
			}
			if err := tt.lose(f, stream); err != nil {
				t.Fatal(err)
			}
			claimed, dead, err := f.q.Claim(ctx, queue.Outgoing, "c2", 0, 10)
			if err != nil || len(claimed) != 0 || len(dead) != 0 {
				t.Fatalf("Claim after loss = %v, %v, %v; want nothing and no error", claimed, dead, err)
			}
			if st := streamStats(t, mustInspect(t, f.q), queue.Outgoing); !st.GroupExists {
				t.Fatalf("group not re-created by Claim: %+v", st)
			}
		})
	}
}

func TestInspectCountsEverything(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	due := time.Now().Add(10 * time.Minute).Truncate(time.Millisecond)
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 5)...); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Enqueue(ctx, queue.Incoming, jobs(10, 2)...); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Schedule(ctx, queue.Webhooks, due, jobs(20, 3)...); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Schedule(ctx, queue.Webhooks, due.Add(time.Minute), jobs(30, 1)...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Read(ctx, queue.Outgoing, "w1", 2, 0); err != nil {
		t.Fatal(err)
	}
	st := mustInspect(t, f.q)
	want := map[queue.Kind][3]int64{ // length, pending, lag
		queue.Outgoing: {5, 2, 3},
		queue.Incoming: {2, 0, 2},
		queue.Webhooks: {0, 0, 0},
	}
	for k, w := range want {
		s := streamStats(t, st, k)
		if got := [3]int64{s.Length, s.Pending, s.Lag}; got != w || !s.GroupExists {
			t.Errorf("%s: length, pending, lag = %v (group %v), want %v", k, got, s.GroupExists, w)
		}
	}
	out := streamStats(t, st, queue.Outgoing)
	if len(out.Consumers) != 1 || out.Consumers[0].Name != "w1" || out.Consumers[0].Pending != 2 || out.Consumers[0].IdleMS < 0 {
		t.Errorf("outgoing consumers = %+v, want w1 with 2 pending", out.Consumers)
	}
	if st.Retry.Size != 4 || st.Retry.NextDue == nil || !st.Retry.NextDue.Equal(due) {
		t.Errorf("retry = %+v, want 4 members, next due %v", st.Retry, due)
	}
	if st.Inflight != 11 || st.Dead != 0 {
		t.Errorf("inflight, dead = %d, %d; want 11, 0", st.Inflight, st.Dead)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"streams"`, `"lag":3`, `"idle_ms"`, `"next_due"`, `"dead_letters":0`, `"inflight":11`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
}

func TestInspectOfAnEmptyRedis(t *testing.T) {
	c, keys := redistest.New(t)
	q := queue.New(queue.Options{Client: c, Keys: keys}) // no Init: nothing exists
	st := mustInspect(t, q)
	if len(st.Streams) != len(queue.Kinds()) || st.Retry.NextDue != nil || st.Inflight != 0 {
		t.Fatalf("Inspect = %+v, want every kind empty", st)
	}
	for _, s := range st.Streams {
		if s.GroupExists || s.Length != 0 {
			t.Fatalf("%s = %+v, want no group and no entries", s.Kind, s)
		}
	}
}

func TestPruneConsumersKeepsThoseWithPendingEntries(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Incoming, jobs(1, 2)...); err != nil {
		t.Fatal(err)
	}
	done, err := f.q.Read(ctx, queue.Incoming, "done", 1, 0)
	if err != nil || len(done) != 1 {
		t.Fatal(done, err)
	}
	if err := f.q.Ack(ctx, queue.Incoming, done...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Read(ctx, queue.Incoming, "busy", 1, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := f.q.PruneConsumers(ctx, queue.Incoming, time.Hour); err != nil || n != 0 {
		t.Fatalf("PruneConsumers(1h) = %d, %v; want 0", n, err)
	}
	if n, err := f.q.PruneConsumers(ctx, queue.Incoming, 0); err != nil || n != 1 {
		t.Fatalf("PruneConsumers(0) = %d, %v; want 1", n, err)
	}
	cs := streamStats(t, mustInspect(t, f.q), queue.Incoming).Consumers
	if len(cs) != 1 || cs[0].Name != "busy" {
		t.Fatalf("consumers left = %+v, want only busy", cs)
	}
}

func TestMetricsCountOnAPassedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, queue.Options{Registerer: reg})
	// A second queue on the same registry shares the counters.
	q2 := queue.New(queue.Options{Client: f.c, Keys: f.keys, Registerer: reg})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 3)...); err != nil {
		t.Fatal(err)
	}
	if err := q2.Enqueue(ctx, queue.Outgoing, jobs(4, 1)...); err != nil {
		t.Fatal(err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "c", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.q.Ack(ctx, queue.Outgoing, ds...); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP postal_queue_enqueued_total Entries added to a stream by Enqueue.
# TYPE postal_queue_enqueued_total counter
postal_queue_enqueued_total{queue="outgoing"} 4
# HELP postal_queue_acked_total Entries acknowledged.
# TYPE postal_queue_acked_total counter
postal_queue_acked_total{queue="outgoing"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "postal_queue_enqueued_total", "postal_queue_acked_total"); err != nil {
		t.Fatal(err)
	}
}

// Touch keeps a slow consumer's entries from being reclaimed, and does not
// count as a delivery; untouched entries are reclaimed as usual.
func TestTouchResetsIdleTime(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 2)...); err != nil {
		t.Fatal(err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "slow", 10, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Read = %d, %v", len(ds), err)
	}
	const idle = 300 * time.Millisecond
	deadline := time.Now().Add(idle + 50*time.Millisecond)
	for time.Now().Before(deadline) { // let both entries become idle longer than `idle`
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.q.Touch(ctx, queue.Outgoing, "slow", ds[0]); err != nil {
		t.Fatal(err)
	}
	claimed, _, err := f.q.Claim(ctx, queue.Outgoing, "other", idle, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 || claimed[0].StreamID != ds[1].StreamID {
		t.Fatalf("claimed %+v; want only the untouched entry %s", claimed, ds[1].StreamID)
	}
	if claimed[0].Count != 2 {
		t.Fatalf("untouched entry count = %d, want 2", claimed[0].Count)
	}
	// The touched entry still counts one delivery: reclaimed now, it is at 2.
	rest, _, err := f.q.Claim(ctx, queue.Outgoing, "other", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range rest {
		if d.StreamID == ds[0].StreamID {
			found = true
			if d.Count != 2 {
				t.Fatalf("touched entry count after reclaim = %d, want 2 (Touch is not a delivery)", d.Count)
			}
		}
	}
	if !found {
		t.Fatalf("touched entry not reclaimable with minIdle 0: %+v", rest)
	}
	if err := f.q.Touch(ctx, queue.Outgoing, "other"); err != nil {
		t.Fatalf("Touch of nothing: %v", err)
	}
}

func TestKindOfScopeIsTheOneMappingOfSQLScopes(t *testing.T) {
	for scope, want := range map[string]queue.Kind{store.ScopeOutgoing: queue.Outgoing, store.ScopeIncoming: queue.Incoming} {
		if k, ok := queue.KindOfScope(scope); !ok || k != want || k.Scope() != scope {
			t.Errorf("KindOfScope(%q) = %q, %v; Scope() = %q", scope, k, ok, k.Scope())
		}
	}
	if k, ok := queue.KindOfScope("webhooks"); ok {
		t.Errorf("KindOfScope(webhooks) = %q, want none: webhook requests are not queued messages", k)
	}
	if s := queue.Webhooks.Scope(); s != "" {
		t.Errorf("Webhooks.Scope() = %q, want empty", s)
	}
}
