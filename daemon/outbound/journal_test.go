package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// A message the receiver accepted is recorded in the sent-journal at once.
// When the worker dies before its outcome commits, the next claim of the
// row commits Sent with the recorded delivery and does not send again; a
// record that belongs to another row (an id SQLite gave again, another
// message) is ignored and the message is sent.
func TestSentJournalKeepsAnAcceptedMessageFromBeingSentAgain(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	j, err := e.q.Journal(queue.Outgoing, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	o := e.o
	o.Journal = j
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	rows := e.queueMessages([]string{"a@dest.test", "b@dest.test"})
	first := p.Handle(ctx, rows) // the worker "dies" here: nothing is committed
	for _, out := range first {
		if out.Status() != store.StatusSent {
			t.Fatalf("first attempt: %s %+v", out.Status(), out.Delivery())
		}
	}
	if n := len(e.mail.received()); n != 2 {
		t.Fatalf("receiver got %d messages, want 2", n)
	}
	recs, err := j.Lookup(ctx, []int64{rows[0].ID, rows[1].ID})
	if err != nil || len(recs) != 2 {
		t.Fatalf("journal after the sends: %d records, %v", len(recs), err)
	}

	// Row b's record is made to name another message: it must be sent again.
	var other journalEntry
	if err := json.Unmarshal(recs[rows[1].ID], &other); err != nil {
		t.Fatal(err)
	}
	other.MessageID++
	b, _ := json.Marshal(other)
	if err := j.Record(ctx, []int64{rows[1].ID}, [][]byte{b}); err != nil {
		t.Fatal(err)
	}

	if _, err := e.s.ReleaseLocksOf(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	again, err := e.s.ClaimQueued(ctx, []int64{rows[0].ID, rows[1].ID}, "w2-outgoing-0:x:1", now.Add(time.Second), now.Add(time.Hour))
	if err != nil || len(again) != 2 {
		t.Fatalf("reclaim: %d rows, %v", len(again), err)
	}
	outs := p.Handle(ctx, again)
	if n := len(e.mail.received()); n != 3 {
		t.Fatalf("receiver got %d messages after the takeover, want 3 (a from the journal, b sent again)", n)
	}
	res, err := e.s.CommitOutcomes(ctx, outs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range res.Applied {
		if !ok || res.Fallback[i] != "" {
			t.Fatalf("outcome %d not applied: %q %v", i, res.Fallback[i], res.Failed[i])
		}
	}
	da := e.deliveries(rows[0].MessageID)
	if len(da) != 1 || da[0].Status != store.StatusSent || !strings.HasSuffix(da[0].Details, journalSuffix) ||
		!strings.HasPrefix(da[0].Details, "Message for a@dest.test accepted by mx1.dest.test") || !strings.Contains(da[0].Output, "250") {
		t.Fatalf("a's deliveries = %+v, want one Sent from the journal", da)
	}
	db := e.deliveries(rows[1].MessageID)
	if len(db) != 1 || db[0].Status != store.StatusSent || strings.HasSuffix(db[0].Details, journalSuffix) {
		t.Fatalf("b's deliveries = %+v, want one Sent by a new send", db)
	}
	if m := e.message(rows[0].MessageID); m.Status != store.StatusSent {
		t.Fatalf("a's status = %s", m.Status)
	}
}

// Without a readable journal (Redis down) messages are sent as before.
func TestSentJournalFailureFallsBackToSending(t *testing.T) {
	e := newEnv(t, envOptions{})
	o := e.o
	o.Journal = brokenJournal{}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	outs := p.Handle(context.Background(), e.queueMessages([]string{"c@dest.test"}))
	if outs[0].Status() != store.StatusSent || len(e.mail.received()) != 1 {
		t.Fatalf("outcome %s, receiver got %d; want Sent and 1", outs[0].Status(), len(e.mail.received()))
	}
}

type brokenJournal struct{}

func (brokenJournal) Record(context.Context, []int64, [][]byte) error { return errRedisDown }
func (brokenJournal) Lookup(context.Context, []int64) (map[int64][]byte, error) {
	return nil, errRedisDown
}

var errRedisDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

// blockingJournal holds its first Record until release is closed and
// remembers the ids of every call.
type blockingJournal struct {
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	calls   [][]int64
}

func (b *blockingJournal) Record(ctx context.Context, ids []int64, values [][]byte) error {
	b.mu.Lock()
	b.calls = append(b.calls, append([]int64(nil), ids...))
	first := len(b.calls) == 1
	b.mu.Unlock()
	if first {
		close(b.started)
		<-b.release
	}
	return nil
}

func (b *blockingJournal) Lookup(context.Context, []int64) (map[int64][]byte, error) { return nil, nil }

// Records of concurrent batches share round trips: while one write is out,
// what any batch adds waits and goes in the next write, and each batch's
// close returns only once its own records are written.
func TestSentJournalRecordsOfConcurrentBatchesShareAWrite(t *testing.T) {
	bj := &blockingJournal{started: make(chan struct{}), release: make(chan struct{})}
	p := &Processor{o: Options{Journal: bj}, log: slog.New(slog.DiscardHandler), m: mustMetrics(t)}
	ctx := context.Background()
	job := func(id int64) *job { return &job{q: &store.QueuedMessage{ID: id, MessageID: id}} }
	a, b := p.startJournal(ctx, 2), p.startJournal(ctx, 1)
	a.add(job(1))
	<-bj.started // the first write is out and held
	a.add(job(2))
	b.add(job(3))
	bClosed := make(chan struct{})
	go func() { b.close(); close(bClosed) }()
	select {
	case <-bClosed:
		t.Fatal("batch b's close returned before its record was written")
	default:
	}
	close(bj.release)
	a.close()
	<-bClosed
	bj.mu.Lock()
	defer bj.mu.Unlock()
	if len(bj.calls) != 2 || len(bj.calls[0]) != 1 || len(bj.calls[1]) != 2 {
		t.Fatalf("Record calls %v, want [[1] [2 3]]", bj.calls)
	}
}

func mustMetrics(t *testing.T) *metrics {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
