package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
)

func TestRetryShapeCountsByDueTime(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	now := time.Now()
	for i, due := range []time.Duration{-time.Minute, 2 * time.Minute, 3 * time.Minute, 30 * time.Minute, 5 * time.Hour} {
		if err := f.q.Schedule(ctx, queue.Outgoing, now.Add(due), queue.Job{ID: int64(i + 1), Domain: "d.test"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.q.RetryShape(ctx, now, []time.Duration{0, 5 * time.Minute, time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{1, 2, 1, 1}
	if len(got) != len(want) {
		t.Fatalf("buckets = %+v", got)
	}
	for i, w := range want {
		if got[i].Count != w {
			t.Fatalf("bucket %d = %d, want %d (all %+v)", i, got[i].Count, w, got)
		}
	}
	if !got[3].Due.IsZero() || !got[1].Due.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("bounds = %+v", got)
	}
}

func TestRequeueDeadMovesLettersBack(t *testing.T) {
	f := newFixture(t, queue.Options{MaxDeliveries: 1})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: 7, Domain: "d.test"}); err != nil {
		t.Fatal(err)
	}
	if ds, err := f.q.Read(ctx, queue.Outgoing, "c1", 1, 0); err != nil || len(ds) != 1 {
		t.Fatalf("read: %v %v", ds, err)
	}
	if _, dead, err := f.q.Claim(ctx, queue.Outgoing, "c2", 0, 10); err != nil || len(dead) != 1 {
		t.Fatalf("claim: %v %v", dead, err)
	}
	letters, err := f.q.DeadLetters(ctx, 10)
	if err != nil || len(letters) != 1 {
		t.Fatalf("dead letters: %v %v", letters, err)
	}
	if n, err := f.q.RequeueDead(ctx, letters...); err != nil || n != 1 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	if left, err := f.q.DeadLetters(ctx, 10); err != nil || len(left) != 0 {
		t.Fatalf("dead letters after requeue: %v %v", left, err)
	}
	ds, err := f.q.Read(ctx, queue.Outgoing, "c3", 10, 0)
	if err != nil || len(ds) != 1 || ds[0].Job.ID != 7 {
		t.Fatalf("read after requeue: %+v %v", ds, err)
	}
}
