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
