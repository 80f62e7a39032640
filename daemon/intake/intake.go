// Package intake makes accepted mail durable before anyone is told it was
// accepted. Callers (the SMTP server, later the HTTP API) hand it a
// store.Submission; Submit returns once the submission is committed in SQL,
// which is what makes it durable.
//
// Concurrent submissions are group-committed: a committer takes every
// submission waiting at that moment (up to MaxBatch) and stores them in one
// transaction, so the cost of an fsync is shared by every message in the
// batch. A dispatcher then writes the batches' stream entries to Redis, one
// round trip per stream for every batch waiting, while the committers go on
// with the next batch: a slow or unreachable Redis never delays an answer.
// A dispatch that fails is left to the requeuer's reconciliation, which
// dispatches every due row that Redis does not know.
//
// The same dispatcher takes the work that the worker's outcome commits
// create (bounce messages, webhook requests) through Dispatch, so every
// new row reaches its stream by one path.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// Storer is what intake needs of the database.
type Storer interface {
	InsertSubmissions(ctx context.Context, subs []store.Submission) ([][]store.Accepted, error)
}

// Dispatcher is what intake needs of the queue: stream entries, and the
// per-minute counters (messages accepted).
type Dispatcher interface {
	Enqueue(ctx context.Context, kind queue.Kind, jobs ...queue.Job) error
	Count(ctx context.Context, at time.Time, c queue.Counts) error
}

// ErrStopped is returned by Submit once the intake has shut down.
var ErrStopped = errors.New("intake stopped")

// Options configures an Intake.
type Options struct {
	Store Storer
	Queue Dispatcher
	Log   *slog.Logger
	// MaxBatch caps the submissions committed in one transaction (default 256).
	MaxBatch int
	// Committers is how many batches may commit at once (default 1: SQLite
	// has a single writer, and on PostgreSQL more committers only make
	// smaller batches that cost more statements per message).
	Committers int
	// CommitTimeout bounds one batch's commit, and one dispatch round
	// (default 30s).
	CommitTimeout time.Duration
	// Registerer receives the intake's metrics; nil registers none.
	Registerer prometheus.Registerer
}

type request struct {
	sub  store.Submission
	done chan result
}

type result struct {
	accepted []store.Accepted
	err      error
}

// Intake group-commits submissions. Create it with New, start Run, then
// call Submit from any number of goroutines.
type Intake struct {
	o    Options
	reqs chan request
	// committed carries committed work from the committers (and Dispatch)
	// to the dispatcher; closed once the committers have finished.
	committed chan committedWork
	// backlogFull is set when a batch was left to reconciliation, and
	// cleared when a dispatch round succeeds (it limits the logging).
	backlogFull atomic.Bool
	// mu guards closed: Submit sends under the read lock, Run closes reqs
	// under the write lock, so no request is ever sent on a closed channel
	// or left behind after the committers finished.
	mu     sync.RWMutex
	closed bool

	batchSize   prometheus.Histogram
	commitTime  prometheus.Histogram
	dispatchErr prometheus.Counter
}

// New returns an Intake; it accepts nothing until Run is called.
func New(o Options) *Intake {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Committers <= 0 {
		o.Committers = 1
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	in := &Intake{
		o:         o,
		reqs:      make(chan request, o.MaxBatch*o.Committers),
		committed: make(chan committedWork, dispatchBacklog),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "postal_intake_batch_size",
			Help: "Submissions committed per SQL transaction.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "postal_intake_commit_seconds",
			Help: "Time to commit one batch to SQL.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		dispatchErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "postal_intake_dispatch_errors_total",
			Help: "Dispatches of committed batches that failed or found the backlog full (left to reconciliation)."}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(in.batchSize, in.commitTime, in.dispatchErr)
	}
	return in
}

// Submit stores sub durably and returns its stored messages. Once the
// submission has been handed to a committer, Submit waits for the commit to
// finish even if ctx ends, so that a caller never reports failure for mail
// that was in fact stored. After Run has returned it fails with ErrStopped.
func (in *Intake) Submit(ctx context.Context, sub store.Submission) ([]store.Accepted, error) {
	r := request{sub: sub, done: make(chan result, 1)}
	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		return nil, ErrStopped
	}
	select {
	case <-ctx.Done():
		in.mu.RUnlock()
		return nil, ctx.Err()
	case in.reqs <- r:
	}
	in.mu.RUnlock()
	res := <-r.done
	return res.accepted, res.err
}

// dispatchBacklog is how many committed batches may wait for the
// dispatcher; when it is full, a committed batch is left to reconciliation
// rather than make an answer wait for Redis.
const dispatchBacklog = 64

// Run commits batches until ctx ends; then it refuses new submissions,
// commits every submission already handed over, dispatches every committed
// batch, and returns nil.
func (in *Intake) Run(ctx context.Context) error {
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		in.dispatchLoop()
	}()
	var wg sync.WaitGroup
	for range in.o.Committers {
		wg.Go(in.commitLoop)
	}
	<-ctx.Done()
	in.mu.Lock() // waits for senders in flight; the committers keep draining meanwhile
	in.closed = true
	close(in.reqs)
	in.mu.Unlock()
	wg.Wait()
	close(in.committed)
	<-dispatched
	return nil
}

// commitLoop commits batches until reqs is closed and empty.
func (in *Intake) commitLoop() {
	batch := make([]request, 0, in.o.MaxBatch)
	for {
		r, ok := <-in.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	drain:
		for len(batch) < in.o.MaxBatch {
			select {
			case r, ok := <-in.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		in.commit(batch)
	}
}

// commit stores one batch and answers every request in it.
func (in *Intake) commit(batch []request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), in.o.CommitTimeout)
	defer cancel()
	subs := make([]store.Submission, len(batch))
	for i, r := range batch {
		subs[i] = r.sub
	}
	accepted, err := in.o.Store.InsertSubmissions(ctx, subs)
	if err != nil {
		err = fmt.Errorf("intake: %w", err)
		in.o.Log.Error("commit failed", "submissions", len(batch), "err", err)
		for _, r := range batch {
			r.done <- result{err: err}
		}
		return
	}
	for i, r := range batch {
		r.done <- result{accepted: accepted[i]}
	}
	in.batchSize.Observe(float64(len(batch)))
	in.commitTime.Observe(time.Since(start).Seconds())
	var n int64
	for _, a := range accepted {
		n += int64(len(a))
	}
	in.enqueueCommitted(committedWork{jobs: jobsOf(accepted), accepted: n, at: time.Now()})
}

// committedWork is what the dispatcher does for one committed batch: its
// stream entries, and the messages it stored for the per-minute counters.
type committedWork struct {
	jobs     map[queue.Kind][]queue.Job
	accepted int64
	at       time.Time
}

// jobsOf returns the stream entries committed submissions need.
func jobsOf(accepted [][]store.Accepted) map[queue.Kind][]queue.Job {
	byKind := map[queue.Kind][]queue.Job{}
	for _, sub := range accepted {
		for _, a := range sub {
			if a.QueuedID == 0 {
				continue
			}
			if k, ok := queue.KindOfScope(a.Scope); ok {
				byKind[k] = append(byKind[k], queue.Job{ID: a.QueuedID, Domain: a.Domain})
			}
		}
	}
	return byKind
}

// Dispatch hands committed work (rows already durable in SQL) to the
// dispatcher without waiting for Redis. When the backlog is full, or the
// intake has stopped, the work is left to reconciliation.
func (in *Intake) Dispatch(jobs map[queue.Kind][]queue.Job) {
	if len(jobs) == 0 {
		return
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.closed {
		in.dispatchErr.Inc()
		in.o.Log.Warn("intake stopped; reconciliation will dispatch the new work")
		return
	}
	in.enqueueCommitted(committedWork{jobs: jobs})
}

// enqueueCommitted passes work to the dispatcher unless its backlog is full
// (then its messages go uncounted in the per-minute counters too).
func (in *Intake) enqueueCommitted(w committedWork) {
	select {
	case in.committed <- w:
	default:
		// Redis is slower than SQL for now (or hangs): the rows are
		// durable and due, so reconciliation dispatches them; answering
		// never waits for Redis.
		in.dispatchErr.Inc()
		if in.backlogFull.CompareAndSwap(false, true) {
			in.o.Log.Warn("dispatch backlog full; reconciliation will dispatch what is committed meanwhile",
				"batches", dispatchBacklog)
		}
	}
}

// dispatchLoop dispatches committed batches until committed is closed and
// empty, taking every batch waiting at once into one round trip per stream.
func (in *Intake) dispatchLoop() {
	byKind := map[queue.Kind][]queue.Job{}
	accepted := map[int64]int64{} // unix minute -> messages
	add := func(w committedWork) {
		for k, js := range w.jobs {
			byKind[k] = append(byKind[k], js...)
		}
		if w.accepted > 0 {
			accepted[w.at.Unix()/60] += w.accepted
		}
	}
	for w := range in.committed {
		add(w)
	more:
		for {
			select {
			case next, ok := <-in.committed:
				if !ok {
					break more
				}
				add(next)
			default:
				break more
			}
		}
		in.dispatch(byKind, accepted)
		clear(byKind)
		clear(accepted)
	}
}

// dispatch writes one stream entry per queued message, one round trip per
// stream. A failure is logged and left to reconciliation: the rows are
// already durable and due, so the requeuer finds them.
func (in *Intake) dispatch(byKind map[queue.Kind][]queue.Job, accepted map[int64]int64) {
	ctx, cancel := context.WithTimeout(context.Background(), in.o.CommitTimeout)
	defer cancel()
	ok := true
	for kind, jobs := range byKind {
		if err := in.o.Queue.Enqueue(ctx, kind, jobs...); err != nil {
			ok = false
			in.dispatchErr.Inc()
			in.o.Log.Warn("dispatch failed; reconciliation will re-dispatch", "queue", string(kind), "jobs", len(jobs), "err", err)
		}
	}
	if ok {
		in.backlogFull.Store(false)
	}
	for minute, n := range accepted {
		if err := in.o.Queue.Count(ctx, time.Unix(minute*60, 0), queue.Counts{Accepted: n}); err != nil {
			in.o.Log.Warn("per-minute counters not updated; the console reads SQL for minutes it cannot vouch for",
				"messages", n, "err", err)
		}
	}
}
