package outbound

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/postalgo/postal/daemon/store"
)

// Journal is the sent-journal of the outgoing stream (package queue's
// *queue.Journal): a record per queued row whose message the receiving
// server accepted, written right after its 250 and read back by the next
// worker to claim the row. With it, a worker killed between a message's 250
// and the SQL commit of its outcome does not cause the message to be sent
// again: the worker that takes the row over commits Sent with the recorded
// details. Only the message whose DATA was on the wire at the kill can
// still arrive twice (SMTP's own window).
type Journal interface {
	Record(ctx context.Context, queuedIDs []int64, values [][]byte) error
	Lookup(ctx context.Context, queuedIDs []int64) (map[int64][]byte, error)
}

// journalEntry is what a sent-journal record holds: the row it belongs to
// (queued rows are deleted when done and SQLite may give a later row the
// same id, so the message id and the row's creation time must match too)
// and the delivery as it was recorded for the 250.
type journalEntry struct {
	MessageID int64   `json:"m"`
	Created   int64   `json:"c"` // the queued row's created_at, unix µs
	Owner     string  `json:"o"` // the lock owner of the claim that sent
	Details   string  `json:"d"`
	Output    string  `json:"out"`
	SSL       bool    `json:"ssl,omitempty"`
	Time      float64 `json:"t"`
}

// journalSuffix ends the details of a delivery taken from the journal.
const journalSuffix = " (recorded by a worker that stopped before saving it; not sent again)"

// journalQueue holds the sent-journal records of every batch the
// processor is delivering that wait for their write. One write is out at
// a time: records that come in meanwhile, from any batch, go together in
// the next (one pipelined round trip), so concurrent batches share their
// round trips rather than each making its own.
type journalQueue struct {
	mu      sync.Mutex
	pending []journalRecord
	spare   []journalRecord
	writing bool
}

// journalRecord is one job whose record is to be written, and the batch
// waiting for it.
type journalRecord struct {
	j    *job
	done *sync.WaitGroup
}

// journalWriter is one batch's view of the processor's journal queue: a
// send's slot and connection are free again at the 250, and close waits
// until the batch's records are written (or failed).
type journalWriter struct {
	p       *Processor
	pending sync.WaitGroup
}

// startJournal returns the writer for a batch of at most n sends, or nil
// without a journal. close must be called once the sends are done.
func (p *Processor) startJournal(_ context.Context, n int) *journalWriter {
	if p.o.Journal == nil || n == 0 {
		return nil
	}
	return &journalWriter{p: p}
}

// add queues j's record; it never blocks. When no write is out it starts
// one, on its own goroutine.
func (w *journalWriter) add(j *job) {
	if w == nil {
		return
	}
	w.pending.Add(1)
	q := &w.p.journal
	q.mu.Lock()
	q.pending = append(q.pending, journalRecord{j: j, done: &w.pending})
	start := !q.writing
	q.writing = true
	q.mu.Unlock()
	if start {
		go w.p.drainJournal()
	}
}

// close waits until every queued record of the batch is written (or
// failed).
func (w *journalWriter) close() {
	if w != nil {
		w.pending.Wait()
	}
}

// drainJournal writes what the queue holds, round after round, until it is
// empty. A record is worth writing even at shutdown: no context ends it
// (the Redis client's timeouts bound each round).
func (p *Processor) drainJournal() {
	q := &p.journal
	ctx := context.Background()
	var batch []*job
	for {
		q.mu.Lock()
		recs := q.pending
		if len(recs) == 0 {
			q.writing = false
			q.mu.Unlock()
			return
		}
		q.pending, q.spare = q.spare[:0], nil
		q.mu.Unlock()
		batch = batch[:0]
		for _, r := range recs {
			batch = append(batch, r.j)
		}
		p.writeJournal(ctx, batch)
		for i, r := range recs {
			r.done.Done()
			recs[i] = journalRecord{}
		}
		q.mu.Lock()
		q.spare = recs[:0]
		q.mu.Unlock()
	}
}

// writeJournal records batch in one round trip. A failure is logged and
// otherwise ignored: without the records, a crash before the outcomes
// commit means one more delivery each, as without a journal.
func (p *Processor) writeJournal(ctx context.Context, batch []*job) {
	ids := make([]int64, len(batch))
	values := make([][]byte, len(batch))
	for i, j := range batch {
		d := j.res.d
		v, _ := json.Marshal(journalEntry{MessageID: j.q.MessageID, Created: j.q.CreatedAt.UnixMicro(), Owner: j.q.LockedBy,
			Details: d.Details, Output: d.Output, SSL: d.SentWithSSL, Time: d.Time}) // strings, ints, a bool: cannot fail
		ids[i], values[i] = j.q.ID, v
	}
	if err := p.o.Journal.Record(ctx, ids, values); err != nil {
		p.m.journal.WithLabelValues("record_failed").Add(float64(len(batch)))
		p.log.Warn("sent-journal records failed; a crash before the outcomes commit sends these messages again",
			"messages", len(batch), "err", err)
		return
	}
	p.m.journal.WithLabelValues("recorded").Add(float64(len(batch)))
}

// journaled returns the jobs whose message an earlier claim of their row
// already sent (a sent-journal record for this very row), with the
// delivery that claim recorded. When the journal cannot be read it returns
// nothing: the messages are sent, as without a journal.
func (p *Processor) journaled(ctx context.Context, jobs []*job) map[*job]store.NewDelivery {
	if p.o.Journal == nil || len(jobs) == 0 {
		return nil
	}
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.q.ID
	}
	recs, err := p.o.Journal.Lookup(ctx, ids)
	if err != nil {
		p.m.journal.WithLabelValues("lookup_failed").Inc()
		p.log.Warn("sent-journal lookup failed; sending without it", "messages", len(ids), "err", err)
		return nil
	}
	if len(recs) == 0 {
		return nil
	}
	out := map[*job]store.NewDelivery{}
	for _, j := range jobs {
		raw, ok := recs[j.q.ID]
		if !ok {
			continue
		}
		var e journalEntry
		if err := json.Unmarshal(raw, &e); err != nil || e.MessageID != j.q.MessageID || e.Created != j.q.CreatedAt.UnixMicro() {
			continue // another row that had this id, or not ours
		}
		p.m.journal.WithLabelValues("reused").Inc()
		p.log.Info("message already sent by an earlier claim; recording it as sent without sending it again",
			"queued_id", j.q.ID, "message_id", j.q.MessageID, "sent_by", e.Owner)
		out[j] = store.NewDelivery{Status: store.StatusSent, Details: strings.TrimSuffix(e.Details, ".") + journalSuffix,
			Output: e.Output, SentWithSSL: e.SSL, Time: e.Time}
	}
	return out
}
