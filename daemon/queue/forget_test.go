package queue_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
)

func TestForgetRemovesEntriesRetriesAndInflight(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 5)...); err != nil {
		t.Fatal(err)
	}
	pending, err := f.q.Read(ctx, queue.Outgoing, "c1", 2, 0) // ids 1 and 2 now pending
	if err != nil || len(pending) != 2 {
		t.Fatalf("read: %v %v", pending, err)
	}
	six := queue.Job{ID: 6, Domain: "x.example"}
	if err := f.q.Schedule(ctx, queue.Outgoing, time.Now().Add(time.Hour), six); err != nil {
		t.Fatal(err)
	}
	got, err := f.q.Forget(ctx, queue.Outgoing, jobs(1, 1)[0], jobs(3, 1)[0], six)
	if err != nil {
		t.Fatal(err)
	}
	if got != (queue.Forgotten{Entries: 2, Retries: 1, Inflight: 3}) {
		t.Fatalf("forgotten = %+v", got)
	}
	left, err := f.c.XRange(ctx, f.keys.Key("stream", "outgoing"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range left {
		ids = append(ids, m.Values["id"].(string))
	}
	if !slices.Equal(ids, []string{"2", "4", "5"}) {
		t.Fatalf("stream ids left = %v", ids)
	}
	missing, err := f.q.Missing(ctx, queue.Outgoing, []int64{1, 2, 3, 6})
	if err != nil || !slices.Equal(missing, []int64{1, 3, 6}) {
		t.Fatalf("missing = %v, %v", missing, err)
	}
	st, err := f.q.Inspect(ctx)
	if err != nil || st.Retry.Size != 0 {
		t.Fatalf("retry set = %+v, %v", st.Retry, err)
	}
	for _, s := range st.Streams {
		if s.Kind == queue.Outgoing && s.Pending != 1 {
			t.Fatalf("pending = %d, want 1 (entry of id 2)", s.Pending)
		}
	}
}

func TestDropDeadDeletesLetters(t *testing.T) {
	f := newFixture(t, queue.Options{MaxDeliveries: 1})
	ctx := context.Background()
	if err := f.q.Enqueue(ctx, queue.Outgoing, jobs(1, 2)...); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Read(ctx, queue.Outgoing, "c1", 2, 0); err != nil {
		t.Fatal(err)
	}
	if _, dead, err := f.q.Claim(ctx, queue.Outgoing, "c2", 0, 10); err != nil || len(dead) != 2 {
		t.Fatalf("claim: %v %v", dead, err)
	}
	letters, err := f.q.DeadLetters(ctx, 10)
	if err != nil || len(letters) != 2 {
		t.Fatalf("dead letters: %v %v", letters, err)
	}
	if n, err := f.q.DropDead(ctx, letters[0]); err != nil || n != 1 {
		t.Fatalf("drop dead = %d, %v", n, err)
	}
	left, err := f.q.DeadLetters(ctx, 10)
	if err != nil || len(left) != 1 || left[0].StreamID != letters[1].StreamID {
		t.Fatalf("left = %+v, %v", left, err)
	}
}
