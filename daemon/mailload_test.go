package daemon

import (
	"context"
	"testing"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/worker"
)

// The mail worker's handlers are counted while they run, so webhook
// signing yields to mail exactly while deliveries are in flight, and the
// handler's outcomes pass through unchanged.
func TestMailLoadIsBusyWhileHandlersRun(t *testing.T) {
	var l mailLoad
	entered, release := make(chan struct{}), make(chan struct{})
	want := []store.Outcome{store.Drop(&store.QueuedMessage{ID: 7})}
	h := l.track(worker.HandlerFunc(func(context.Context, []*store.QueuedMessage) []store.Outcome {
		entered <- struct{}{}
		<-release
		return want
	}))
	if l.busy() {
		t.Fatal("busy before any delivery")
	}
	got := make(chan []store.Outcome, 2)
	for range 2 {
		go func() { got <- h.Handle(context.Background(), nil) }()
		<-entered
	}
	if !l.busy() {
		t.Fatal("not busy with two batches in flight")
	}
	release <- struct{}{}
	if out := <-got; len(out) != 1 || out[0].QueuedID() != 7 {
		t.Fatalf("outcomes = %+v, want the handler's", out)
	}
	if !l.busy() {
		t.Fatal("not busy with one batch still in flight")
	}
	release <- struct{}{}
	<-got
	if l.busy() {
		t.Fatal("still busy after every batch returned")
	}
}
