package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/worker"
)

// Once a row's Sent outcome commits, the worker deletes the row's
// sent-journal record (the handler wrote it when the receiver said 250); a
// row that is retried keeps its record until it is finally sent.
func TestWorkerForgetsTheJournalRecordsOfCommittedSends(t *testing.T) {
	e := newEnv(t, 10)
	j, err := e.q.Journal(queue.Outgoing, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	acc := e.insert(t, 40, "a.test", "b.test")
	e.enqueue(t, acc)
	retried := map[int64]bool{}
	for i, a := range acc {
		if i%4 == 0 {
			retried[a.QueuedID] = true
		}
	}
	h := &recorder{result: func(q *store.QueuedMessage) store.Outcome {
		if err := j.Record(context.Background(), []int64{q.ID}, [][]byte{[]byte("sent")}); err != nil {
			t.Error(err)
		}
		if retried[q.ID] {
			return store.Retry(q, time.Now().Add(time.Hour), "later")
		}
		return sent(q)
	}}
	o := e.workerOptions(h, time.Minute)
	o.Journals = map[queue.Kind]worker.Journal{queue.Outgoing: j}
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, w)
	waitFor(t, 30*time.Second, "30 messages sent", func() bool { return e.countStatus(t, acc, store.StatusSent) == 30 })
	ids := make([]int64, len(acc))
	for i, a := range acc {
		ids[i] = a.QueuedID
	}
	waitFor(t, 10*time.Second, "only the retried rows' records left", func() bool {
		recs, err := j.Lookup(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(retried) {
			return false
		}
		for id := range recs {
			if !retried[id] {
				return false
			}
		}
		return true
	})
	stop()
}
