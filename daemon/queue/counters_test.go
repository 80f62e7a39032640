package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
)

func TestCountersAddPerMinuteAndAckInOneCall(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	if err := f.q.Count(ctx, t0.Add(5*time.Second), queue.Counts{Accepted: 3}); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 2)...); err != nil {
		t.Fatal(err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "c1", 10, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("read: %v %v", ds, err)
	}
	at := t0.Add(2*time.Minute + time.Second)
	if err := f.q.AckCounted(ctx, queue.Outgoing, at, queue.Counts{Sent: 1, HardFail: 1}, ds...); err != nil {
		t.Fatal(err)
	}
	if err := f.q.AckCounted(ctx, queue.Outgoing, at, queue.Counts{Sent: 2, Held: 1, Bounced: 1}); err != nil {
		t.Fatal(err) // no entries: counting only
	}
	st, err := f.q.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Streams {
		if s.Kind == queue.Outgoing && (s.Length != 0 || s.Pending != 0) {
			t.Fatalf("entries not acked: %+v", s)
		}
	}
	m, err := f.q.ReadMinutes(ctx, t0, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.Counts{{Accepted: 3}, {}, {Sent: 3, HardFail: 1, Held: 1, Bounced: 1}, {}}
	for i := range want {
		if m.Counts[i] != want[i] {
			t.Errorf("minute %d = %+v, want %+v", i, m.Counts[i], want[i])
		}
	}
	// Since is the first write: its minute is not complete, later ones are.
	if !m.Since.Equal(t0.Add(5*time.Second).Truncate(time.Millisecond)) || m.Complete(0) || !m.Complete(1) {
		t.Fatalf("since = %s (t0 %s), complete(0) = %v, complete(1) = %v", m.Since, t0, m.Complete(0), m.Complete(1))
	}
	ttl, err := f.c.TTL(ctx, f.keys.Key("stats", "since")).Result()
	if err != nil || ttl <= time.Hour || ttl > queue.CounterTTL {
		t.Fatalf("since ttl = %s, %v", ttl, err)
	}
}

func TestCountersMissingMeansNothingIsComplete(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	m, err := f.q.ReadMinutes(ctx, time.Now().Add(-time.Hour), 60)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Since.IsZero() || m.Complete(59) || len(m.Counts) != 60 {
		t.Fatalf("empty Redis: since %s, complete(59) %v, %d minutes", m.Since, m.Complete(59), len(m.Counts))
	}
	if _, err := f.q.ReadMinutes(ctx, time.Now(), queue.MaxCounterMinutes+1); err == nil {
		t.Fatal("too many minutes accepted")
	}
}

func TestAckCountedRecoversFromAnEmptyScriptCache(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 1)...); err != nil {
		t.Fatal(err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "c1", 10, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read: %v %v", ds, err)
	}
	if err := f.c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := f.q.AckCounted(ctx, queue.Outgoing, now, queue.Counts{Sent: 1}, ds...); err != nil {
		t.Fatal(err)
	}
	missing, err := f.q.Missing(ctx, queue.Outgoing, []int64{1})
	if err != nil || len(missing) != 1 {
		t.Fatalf("entry still inflight after ack: %v %v", missing, err)
	}
	m, err := f.q.ReadMinutes(ctx, now, 1)
	if err != nil || m.Counts[0].Sent != 1 {
		t.Fatalf("counted once: %+v %v", m, err)
	}
}
