package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
)

// The sent-journal keeps a record per id until it is forgotten or its TTL
// ends; Lookup returns only the ids that have one, kinds do not share
// records, and every key lives under the queue's hash-tagged prefix.
func TestJournalRecordsLookupForgetAndExpire(t *testing.T) {
	f := newFixture(t, queue.Options{})
	ctx := context.Background()
	if _, err := f.q.Journal(queue.Kind("nope"), time.Minute); err == nil {
		t.Fatal("Journal accepted an unknown kind")
	}
	if _, err := f.q.Journal(queue.Outgoing, 0); err == nil {
		t.Fatal("Journal accepted a zero TTL")
	}
	out, err := f.q.Journal(queue.Outgoing, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	in, err := f.q.Journal(queue.Incoming, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Record(ctx, []int64{1, 2}, [][]byte{[]byte("one"), []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if err := out.Record(ctx, []int64{700}, [][]byte{[]byte("seven hundred")}); err != nil {
		t.Fatal(err)
	}
	if err := out.Record(ctx, []int64{3}, nil); err == nil {
		t.Fatal("Record accepted 1 id for 0 values")
	}
	ids := make([]int64, 0, 1200)
	for id := range int64(1200) { // more than one MGET chunk
		ids = append(ids, id)
	}
	got, err := out.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[1]) != "one" || string(got[2]) != "two" || string(got[700]) != "seven hundred" {
		t.Fatalf("Lookup = %v", got)
	}
	if other, err := in.Lookup(ctx, ids); err != nil || len(other) != 0 {
		t.Fatalf("incoming journal sees outgoing records: %v, %v", other, err)
	}
	ttl, err := f.c.PTTL(ctx, f.keys.Key("sent", "outgoing", "700")).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("record TTL = %s, %v; want (0, 1m]", ttl, err)
	}
	if err := out.Forget(ctx, 1, 700, 999); err != nil {
		t.Fatal(err)
	}
	got, err = out.Lookup(ctx, []int64{1, 2, 700})
	if err != nil || len(got) != 1 || string(got[2]) != "two" {
		t.Fatalf("after Forget(1, 700): %v, %v", got, err)
	}

	short, err := f.q.Journal(queue.Outgoing, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := short.Record(ctx, []int64{5}, [][]byte{[]byte("brief")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := short.Lookup(ctx, []int64{5})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record outlived its TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
