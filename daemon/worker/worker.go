package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// Handler does the work for claimed queued messages of one stream. It
// returns exactly one store.Outcome per input row (same order), each built
// from its row (store.Sent(row, ...), store.Retry(row, ...), ...); an
// outcome built for another row is not recorded. A Handler writes nothing
// durable itself: what its work causes (suppressions, bounces, webhook
// requests) travels as the outcome's store.Effects and is committed with it.
// Every row of a batch has the same destination domain and IP address,
// and carries what its claim loaded (store.QueuedMessage's Loaded).
// The context is cancelled when the worker's shutdown grace period ends.
type Handler interface {
	Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
	return f(ctx, batch)
}

// Store is what the worker needs of the database (package store).
type Store interface {
	ClaimQueued(ctx context.Context, ids []int64, owner string, now, until time.Time) ([]*store.QueuedMessage, error)
	ClaimQueuedForDomain(ctx context.Context, scope, domain, owner string, now, until time.Time, limit int) ([]*store.QueuedMessage, error)
	QueuedByIDs(ctx context.Context, ids []int64) ([]*store.QueuedMessage, error)
	CommitOutcomes(ctx context.Context, outs []store.Outcome) (store.Committed, error)
	FailQueued(ctx context.Context, queuedID int64, reason string) error
	ExtendLocks(ctx context.Context, owner string, ids []int64, until time.Time) (int64, error)
	ReleaseLocksOf(ctx context.Context, prefix string) ([]*store.QueuedMessage, error)
}

// Liveness tells which worker processes have a live heartbeat (package
// status); the worker takes over the work of those that have none.
type Liveness interface {
	Alive(ctx context.Context, owners []string) (map[string]bool, error)
}

// Queue is what the worker needs of the dispatch streams (package queue).
type Queue interface {
	Read(ctx context.Context, kind queue.Kind, consumer string, limit int, block time.Duration) ([]queue.Delivery, error)
	Claim(ctx context.Context, kind queue.Kind, consumer string, minIdle time.Duration, limit int) (claimed, dead []queue.Delivery, err error)
	Ack(ctx context.Context, kind queue.Kind, ds ...queue.Delivery) error
	AckCounted(ctx context.Context, kind queue.Kind, at time.Time, c queue.Counts, ds ...queue.Delivery) error
	Retry(ctx context.Context, kind queue.Kind, d queue.Delivery, due time.Time) error
	Schedule(ctx context.Context, kind queue.Kind, due time.Time, jobs ...queue.Job) error
	Touch(ctx context.Context, kind queue.Kind, consumer string, ds ...queue.Delivery) error
	Enqueue(ctx context.Context, kind queue.Kind, jobs ...queue.Job) error
	Consumers(ctx context.Context, kind queue.Kind) ([]queue.ConsumerStats, error)
	ClaimFrom(ctx context.Context, kind queue.Kind, from, consumer string, limit int) (claimed, dead []queue.Delivery, err error)
	Missing(ctx context.Context, kind queue.Kind, ids []int64) ([]int64, error)
}

// Journal is a stream's sent-journal (package queue's *queue.Journal),
// written by the Handler when work reaches its point of no return. The
// worker forgets a row's record once its Sent outcome is committed.
type Journal interface {
	Forget(ctx context.Context, ids ...int64) error
}

// Dispatcher adds stream entries for work an outcome commit created (the
// queued rows of bounces, webhook requests). It must not block for long;
// work it fails to dispatch is left to the requeuer's reconciliation.
// *intake.Intake is one: new work goes through the same dispatcher as
// accepted mail.
type Dispatcher interface {
	Dispatch(jobs map[queue.Kind][]queue.Job)
}

// enqueuer is the Dispatcher used when Options gives none: it enqueues
// directly, logging failures.
type enqueuer struct {
	q   Queue
	log *slog.Logger
}

func (e enqueuer) Dispatch(jobs map[queue.Kind][]queue.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
	defer cancel()
	for kind, js := range jobs {
		if err := e.q.Enqueue(ctx, kind, js...); err != nil {
			e.log.Warn("dispatch of new work failed; reconciliation will dispatch it", "queue", string(kind), "jobs", len(js), "err", err)
		}
	}
}

// Defaults for Options.
const (
	DefaultGrace     = 30 * time.Second
	DefaultReadBlock = 2 * time.Second
)

// Options configures a Worker.
type Options struct {
	// Config is the worker section: threads (consumers per kind),
	// visibility_timeout, batch_size. Zero values take the defaults of
	// config.Defaults.
	Config config.Worker
	// Postal supplies batch_queued_messages.
	Postal config.Postal
	Store  Store
	Queue  Queue
	// Dispatcher dispatches the work outcome commits create; nil enqueues
	// on Queue directly.
	Dispatcher Dispatcher
	// Journals are the sent-journals of the streams whose Handler keeps
	// one; the record of a row whose Sent outcome commits is deleted.
	Journals map[queue.Kind]Journal
	// Handlers does the work per stream; streams with no handler are not
	// consumed. Only queue.Outgoing and queue.Incoming (queued_messages
	// rows) are supported.
	Handlers map[queue.Kind]Handler
	// Owner identifies the process ("host:pid", the default); it prefixes
	// consumer names and SQL lock owners.
	Owner string
	// Grace bounds how long in-flight Handler calls may run after Run's
	// context ends (default 30 s).
	Grace time.Duration
	// ReadBlock bounds one blocking stream read (default 2 s).
	ReadBlock time.Duration
	// ReclaimEvery is how often each consumer reclaims entries idle for the
	// visibility timeout (default a quarter of it).
	ReclaimEvery time.Duration
	// MaxInFlight caps the entries one consumer has in flight (default
	// twice batch_size).
	MaxInFlight int
	// Liveness, when set, lets the worker take over at once the work of
	// other worker processes whose heartbeat is gone (see the package
	// documentation); nil leaves it to the visibility timeout.
	Liveness Liveness
	// ReapEvery is how often the consumers of other processes are checked
	// against their heartbeats (default 5 s).
	ReapEvery time.Duration
	// ReapMinIdle is how long a consumer must have been idle before its
	// work is taken over, a guard against a process that has just started
	// and not yet written its first heartbeat (default 5 s).
	ReapMinIdle time.Duration
	Log         *slog.Logger
	// Registerer receives the worker's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock for SQL claims and due times (default time.Now).
	Now func() time.Time
}

// Worker consumes the dispatch streams. Build it with New and start it with
// Run.
type Worker struct {
	o        Options
	instance string
	m        *metrics
}

// New checks o, fills in defaults and returns a Worker. It fails when
// Store or Queue is missing, a handler is nil or registered for a kind the
// worker cannot claim rows of, or a setting is negative.
func New(o Options) (*Worker, error) {
	if o.Store == nil || o.Queue == nil {
		return nil, errors.New("worker: Store and Queue are required")
	}
	for kind, h := range o.Handlers {
		if h == nil {
			return nil, fmt.Errorf("worker: nil handler for %s", kind)
		}
		if kind.Scope() == "" {
			return nil, fmt.Errorf("worker: kind %q has no queued-message scope (supported: %s, %s)", kind, queue.Outgoing, queue.Incoming)
		}
	}
	d := config.Defaults().Worker
	if o.Config.Threads == 0 {
		o.Config.Threads = d.Threads
	}
	if o.Config.VisibilityTimeout == 0 {
		o.Config.VisibilityTimeout = d.VisibilityTimeout
	}
	if o.Config.BatchSize == 0 {
		o.Config.BatchSize = d.BatchSize
	}
	if o.Config.Threads < 0 || o.Config.VisibilityTimeout < 0 || o.Config.BatchSize < 0 || o.Grace < 0 ||
		o.ReadBlock < 0 || o.ReclaimEvery < 0 || o.MaxInFlight < 0 {
		return nil, errors.New("worker: negative setting")
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.ReadBlock == 0 {
		o.ReadBlock = DefaultReadBlock
	}
	if o.ReclaimEvery == 0 {
		o.ReclaimEvery = max(o.Config.VisibilityTimeout.Duration()/4, 100*time.Millisecond)
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 2 * o.Config.BatchSize
	}
	if o.ReapEvery <= 0 {
		o.ReapEvery = 5 * time.Second
	}
	if o.ReapMinIdle <= 0 {
		o.ReapMinIdle = 5 * time.Second
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("role", "worker")
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dispatcher == nil {
		o.Dispatcher = enqueuer{q: o.Queue, log: o.Log}
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Worker{o: o, instance: store.RandomToken(4), m: m}, nil
}

// Run consumes every stream that has a handler until ctx ends, then drains
// as the package documentation describes and returns nil. It never returns
// early on Redis or SQL errors: those are logged and retried, and the
// affected entries are reclaimed later. With no handlers it only waits for
// ctx to end.
func (w *Worker) Run(ctx context.Context) error {
	if len(w.o.Handlers) == 0 {
		<-ctx.Done()
		return nil
	}
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(w.o.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			w.o.Log.Warn("shutdown grace period over; abandoning running handlers", "grace", w.o.Grace)
			cancelHard()
		case <-finished:
		}
	}()
	var wg sync.WaitGroup
	runners := map[queue.Kind]*kindRunner{}
	for _, kind := range queue.Kinds() {
		h, ok := w.o.Handlers[kind]
		if !ok {
			continue
		}
		k := &kindRunner{w: w, kind: kind, scope: kind.Scope(), h: h, log: w.o.Log.With("queue", string(kind)),
			busy: map[string]struct{}{}}
		runners[kind] = k
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.run(ctx, hard)
		}()
	}
	if w.o.Liveness != nil {
		wg.Go(func() { w.reapLoop(ctx, runners) })
	}
	wg.Wait()
	return nil
}

// kindRunner runs the consumers and the completer of one stream.
type kindRunner struct {
	w     *Worker
	kind  queue.Kind
	scope string
	h     Handler
	log   *slog.Logger

	mu sync.Mutex
	// busy holds the stream ids this process is working on, so that a
	// reclaim never hands the process an entry it is still working on.
	busy map[string]struct{}
	// orphans are consumers of dead processes whose pending entries this
	// process's consumers take over (see reapOnce).
	orphans []string
}

// track marks ds busy and returns those that were not busy already.
func (k *kindRunner) track(ds []queue.Delivery) []queue.Delivery {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := ds[:0]
	for _, d := range ds {
		if _, ok := k.busy[d.StreamID]; ok {
			continue
		}
		k.busy[d.StreamID] = struct{}{}
		out = append(out, d)
	}
	return out
}

// untrack clears the busy marks of ds.
func (k *kindRunner) untrack(ds []queue.Delivery) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, d := range ds {
		delete(k.busy, d.StreamID)
	}
}

func (k *kindRunner) run(ctx, hard context.Context) {
	o := k.w.o
	completions := make(chan completion, o.Config.Threads*o.MaxInFlight)
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		k.completer(completions)
	}()
	var wg sync.WaitGroup
	for n := range o.Config.Threads {
		c := &consumer{
			k:           k,
			name:        fmt.Sprintf("%s-%s-%d", o.Owner, k.kind, n),
			released:    make(chan int, o.MaxInFlight),
			completions: completions,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx, hard)
		}()
	}
	wg.Wait()
	close(completions)
	<-completerDone
}

// consumer is one stream consumer: it reads or reclaims entries, claims
// their rows and starts one goroutine per destination batch.
type consumer struct {
	k           *kindRunner
	name        string
	released    chan int
	completions chan<- completion
	inflight    int
	seq         int
}

func (c *consumer) run(ctx, hard context.Context) {
	o := c.k.w.o
	log := c.k.log.With("consumer", c.name)
	var nextReclaim time.Time
	for {
		c.drainReleased()
		if ctx.Err() != nil {
			break
		}
		free := o.MaxInFlight - c.inflight
		if free <= 0 {
			select {
			case n := <-c.released:
				c.inflight -= n
			case <-ctx.Done():
			}
			continue
		}
		limit := min(free, o.Config.BatchSize)
		var ds []queue.Delivery
		if from := c.k.takeOrphan(); from != "" {
			ds = c.adopt(ctx, hard, from, limit, log)
		}
		if len(ds) == 0 && !time.Now().Before(nextReclaim) {
			ds = c.reclaim(ctx, hard, limit, log)
			nextReclaim = time.Now().Add(o.ReclaimEvery)
		}
		if len(ds) == 0 {
			block := min(o.ReadBlock, time.Until(nextReclaim))
			block = max(block, 10*time.Millisecond)
			var err error
			ds, err = o.Queue.Read(ctx, c.k.kind, c.name, limit, block)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				log.Warn("stream read failed", "err", err)
				waitCtx(ctx, time.Second)
				continue
			}
		}
		// A reclaim may return entries this process is still working on
		// (slower than the visibility timeout); the work in progress acks
		// them, so they are not worked on twice here.
		if ds = c.k.track(ds); len(ds) == 0 {
			continue
		}
		c.inflight += len(ds)
		c.process(hard, ds, log)
	}
	for c.inflight > 0 {
		c.inflight -= <-c.released
	}
}

func (c *consumer) drainReleased() {
	for {
		select {
		case n := <-c.released:
			c.inflight -= n
		default:
			return
		}
	}
}

// waitCtx waits d or until ctx ends.
func waitCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// reclaim takes over entries idle for the visibility timeout and fails the
// rows of entries that were delivered too often.
func (c *consumer) reclaim(ctx, hard context.Context, limit int, log *slog.Logger) []queue.Delivery {
	o := c.k.w.o
	claimed, dead, err := o.Queue.Claim(ctx, c.k.kind, c.name, o.Config.VisibilityTimeout.Duration(), limit)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reclaim failed", "err", err)
		}
		return nil
	}
	c.failDead(hard, dead, log)
	if len(claimed) > 0 {
		log.Info("reclaimed stale entries", "entries", len(claimed))
	}
	return claimed
}

// adopt takes over up to limit pending entries of the consumer from, whose
// process is dead; while entries remain, from stays an orphan for the next
// free consumer.
func (c *consumer) adopt(ctx, hard context.Context, from string, limit int, log *slog.Logger) []queue.Delivery {
	o := c.k.w.o
	claimed, dead, err := o.Queue.ClaimFrom(ctx, c.k.kind, from, c.name, limit)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("taking over a dead consumer's entries failed", "from", from, "err", err)
			c.k.addOrphan(from)
		}
		return nil
	}
	if len(claimed)+len(dead) >= limit {
		c.k.addOrphan(from)
	}
	c.failDead(hard, dead, log)
	if len(claimed) > 0 {
		c.k.w.m.adopted.WithLabelValues(string(c.k.kind)).Add(float64(len(claimed)))
		log.Info("took over entries of a dead worker", "from", from, "entries", len(claimed))
	}
	return claimed
}

// failDead marks the rows of dead-lettered entries failed.
func (c *consumer) failDead(hard context.Context, dead []queue.Delivery, log *slog.Logger) {
	o := c.k.w.o
	for _, d := range dead {
		reason := fmt.Sprintf("Given up after %d deliveries of its queue entry without a recorded outcome "+
			"(the worker handling it crashed or stalled each time).", d.Count)
		c.k.w.m.dead.WithLabelValues(string(c.k.kind)).Inc()
		if err := o.Store.FailQueued(hard, d.Job.ID, reason); err != nil {
			log.Error("mark dead-lettered message failed", "queued_id", d.Job.ID, "err", err)
			continue
		}
		log.Warn("dead-lettered", "queued_id", d.Job.ID, "deliveries", d.Count)
	}
}

// process claims the rows of ds, settles the entries whose rows could not
// be claimed and starts one goroutine per destination.
func (c *consumer) process(hard context.Context, ds []queue.Delivery, log *slog.Logger) {
	o := c.k.w.o
	dels := make(map[int64][]queue.Delivery, len(ds))
	ids := make([]int64, 0, len(ds))
	for _, d := range ds {
		if _, seen := dels[d.Job.ID]; !seen {
			ids = append(ids, d.Job.ID)
		}
		dels[d.Job.ID] = append(dels[d.Job.ID], d)
	}
	c.seq++
	owner := fmt.Sprintf("%s:%s:%d", c.name, c.k.w.instance, c.seq)
	now := o.Now()
	rows, err := o.Store.ClaimQueued(hard, ids, owner, now, now.Add(o.Config.VisibilityTimeout.Duration()))
	if err != nil {
		// Left pending: reclaimed after the visibility timeout.
		log.Error("claim queued messages failed", "entries", len(ds), "err", err)
		c.k.untrack(ds)
		c.inflight -= len(ds)
		return
	}
	claimed := make(map[int64]bool, len(rows))
	for _, r := range rows {
		claimed[r.ID] = true
	}
	var unclaimed []int64
	for _, id := range ids {
		if !claimed[id] {
			unclaimed = append(unclaimed, id)
		}
	}
	if len(unclaimed) > 0 {
		c.settleUnclaimed(hard, unclaimed, dels, now, log)
		for _, id := range unclaimed {
			c.k.untrack(dels[id])
			c.inflight -= len(dels[id])
		}
	}
	groups := map[string][]*store.QueuedMessage{}
	var order []string
	for _, r := range rows {
		if _, ok := groups[r.Domain]; !ok {
			order = append(order, r.Domain)
		}
		groups[r.Domain] = append(groups[r.Domain], r)
	}
	for _, domain := range order {
		g := groups[domain]
		gd := make(map[int64][]queue.Delivery, len(g))
		entries := 0
		for _, r := range g {
			gd[r.ID] = dels[r.ID]
			entries += len(dels[r.ID])
		}
		go c.k.runGroup(hard, c, owner, domain, g, gd, entries)
	}
}

// settleUnclaimed decides, per entry whose row could not be claimed,
// whether it carries no work (ack) or must be kept (retry set); see the
// package documentation.
func (c *consumer) settleUnclaimed(hard context.Context, ids []int64, dels map[int64][]queue.Delivery, now time.Time, log *slog.Logger) {
	o := c.k.w.o
	kind := string(c.k.kind)
	rows, err := o.Store.QueuedByIDs(hard, ids)
	if err != nil {
		log.Error("look up unclaimable rows failed; leaving their entries pending", "entries", len(ids), "err", err)
		return
	}
	byID := make(map[int64]*store.QueuedMessage, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	var acks []queue.Delivery
	for _, id := range ids {
		row := byID[id]
		for _, d := range dels[id] {
			var due time.Time
			var reason string
			switch {
			case row == nil:
				reason = "gone"
			case row.RetryAfter.After(now):
				reason, due = "not_due", row.RetryAfter
			case row.LockedBy != "" && !row.LockedUntil.Before(now):
				reason = "locked"
				if d.Count > 1 {
					reason, due = "locked_redelivered", row.LockedUntil.Add(time.Millisecond)
				}
			default:
				reason, due = "raced", now
			}
			c.k.w.m.skipped.WithLabelValues(kind, reason).Inc()
			if due.IsZero() {
				acks = append(acks, d)
				continue
			}
			if err := o.Queue.Retry(hard, c.k.kind, d, due); err != nil {
				log.Warn("keep entry in retry set failed; it stays pending", "queued_id", id, "err", err)
			}
		}
	}
	if len(acks) > 0 {
		if err := o.Queue.Ack(hard, c.k.kind, acks...); err != nil {
			log.Warn("ack of entries without work failed; they stay pending", "entries", len(acks), "err", err)
			return
		}
		c.k.w.m.acked.WithLabelValues(kind).Add(float64(len(acks)))
	}
}
