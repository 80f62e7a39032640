package webhookworker

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

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

// Store is what the webhook worker needs of the database (package store).
type Store interface {
	ClaimWebhookRequests(ctx context.Context, ids []int64, owner string, now, until time.Time) ([]*store.WebhookRequest, error)
	WebhookRequestLocks(ctx context.Context, ids []int64) ([]store.WebhookRequestLock, error)
	RecordWebhookAttempts(ctx context.Context, outs []store.WebhookAttemptOutcome) ([]bool, error)
	ReleaseWebhookRequests(ctx context.Context, rs []store.WebhookRelease) (int64, error)
	AbandonWebhookRequest(ctx context.Context, id int64, reason string) error
}

// Queue is what the webhook worker needs of the dispatch streams (package queue).
type Queue interface {
	Read(ctx context.Context, kind queue.Kind, consumer string, limit int, block time.Duration) ([]queue.Delivery, error)
	Claim(ctx context.Context, kind queue.Kind, consumer string, minIdle time.Duration, limit int) (claimed, dead []queue.Delivery, err error)
	Ack(ctx context.Context, kind queue.Kind, ds ...queue.Delivery) error
	Retry(ctx context.Context, kind queue.Kind, d queue.Delivery, due time.Time) error
}

// Sender makes one attempt (*webhook.Client).
type Sender interface {
	Send(ctx context.Context, r webhook.Request) webhook.Result
}

// Defaults for Options.
const (
	DefaultMaxInFlight       = 64
	DefaultPerDestination    = 8
	DefaultVisibilityTimeout = 5 * time.Minute
	DefaultReadBlock         = 2 * time.Second
	DefaultParkDelay         = 30 * time.Second
	DefaultSlowAfter         = time.Second
	DefaultGrace             = 10 * time.Second
	// completeBatch caps the outcomes recorded in one transaction.
	completeBatch = 256
	// readBatch caps the entries one read asks for.
	readBatch = 128
)

// Options configures a Worker. Zero values take the defaults above.
type Options struct {
	Store  Store
	Queue  Queue
	Sender Sender
	// Owner identifies the process ("host:pid" by default); it names the
	// stream consumer and prefixes SQL lock owners.
	Owner string
	// MaxInFlight caps the requests held at once (sending or waiting).
	MaxInFlight int
	// PerDestination caps the concurrent attempts to one scheme://host:port.
	PerDestination int
	// VisibilityTimeout is how long a claim lives and how idle an entry must
	// be before it is reclaimed (worker.visibility_timeout).
	VisibilityTimeout time.Duration
	// ReadBlock bounds one blocking stream read.
	ReadBlock time.Duration
	// ReclaimEvery is how often idle entries are reclaimed (default a
	// quarter of VisibilityTimeout).
	ReclaimEvery time.Duration
	// ParkDelay is how long work parked for a slow receiver waits.
	ParkDelay time.Duration
	// SlowAfter marks a destination slow when all its slots have been busy
	// this long.
	SlowAfter time.Duration
	// Grace bounds how long attempts in progress may run after Run's
	// context ends.
	Grace time.Duration
	// Now is the clock for claims, retry times and attempt times.
	Now func() time.Time
	Log *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Worker delivers webhook requests. Build it with New, start it with Run.
type Worker struct {
	o        Options
	consumer string
	instance string
	m        *metrics
	log      *slog.Logger

	mu    sync.Mutex
	dests map[string]*destination
	held  int
	busy  map[string]struct{} // stream ids held, so a reclaim skips them
	seq   int
	wake  chan struct{}
	sends sync.WaitGroup
	// stopping is set once Run's context ended: waiting work is handed back.
	stopping bool
}

// destination is the per-receiver state.
type destination struct {
	active  map[*job]time.Time // attempts on the wire and when they started
	waiting []*job
	// slow is set by an attempt that timed out or could not connect, and
	// cleared by a timely answer.
	slow bool
	// parked counts the requests parked since the destination turned
	// slow; it spreads their due times (see parkDueLocked).
	parked int
	// cost is a moving average of its attempts' durations, 0 until one
	// has finished.
	cost time.Duration
}

// job is one claimed request with the entries that named it.
type job struct {
	req   *store.WebhookRequest
	owner string
	dest  string
	dels  []queue.Delivery
	// due is when a parked job is tried again.
	due time.Time
}

// completion is a finished attempt on its way to the completer.
type completion struct {
	j   *job
	out store.WebhookAttemptOutcome
}

// New checks o, fills in defaults and returns a Worker. It fails when
// Store, Queue or Sender is missing or a setting is negative.
func New(o Options) (*Worker, error) {
	if o.Store == nil || o.Queue == nil || o.Sender == nil {
		return nil, errors.New("webhookworker: Store, Queue and Sender are required")
	}
	if o.MaxInFlight < 0 || o.PerDestination < 0 || o.VisibilityTimeout < 0 || o.ReadBlock < 0 || o.ReclaimEvery < 0 ||
		o.ParkDelay < 0 || o.SlowAfter < 0 || o.Grace < 0 {
		return nil, errors.New("webhookworker: negative setting")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.PerDestination == 0 {
		o.PerDestination = DefaultPerDestination
	}
	def(&o.VisibilityTimeout, DefaultVisibilityTimeout)
	def(&o.ReadBlock, DefaultReadBlock)
	def(&o.ReclaimEvery, max(o.VisibilityTimeout/4, 100*time.Millisecond))
	def(&o.ParkDelay, DefaultParkDelay)
	def(&o.SlowAfter, DefaultSlowAfter)
	def(&o.Grace, DefaultGrace)
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Worker{o: o, consumer: o.Owner + "-webhooks", instance: store.RandomToken(4), m: m,
		log: o.Log.With("queue", string(queue.Webhooks)), dests: map[string]*destination{},
		busy: map[string]struct{}{}, wake: make(chan struct{}, 1)}, nil
}

// Run consumes the webhooks stream until ctx ends, then hands waiting work
// back, lets attempts in progress finish within the grace period, records
// their outcomes and returns nil. Redis and SQL errors are logged and
// retried, never returned.
func (w *Worker) Run(ctx context.Context) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	completions := make(chan completion, w.o.MaxInFlight)
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		w.completer(hard, completions)
	}()
	w.fetch(ctx, hard, completions)

	// Shutdown: waiting work goes back at once; running attempts get Grace.
	w.mu.Lock()
	w.stopping = true
	var back []*job
	now := w.o.Now()
	for _, d := range w.dests {
		for _, j := range d.waiting {
			j.due = now
		}
		back = append(back, d.waiting...)
		w.held -= len(d.waiting)
		d.waiting = nil
	}
	w.mu.Unlock()
	w.park(hard, back)
	sendsDone := make(chan struct{})
	go func() {
		w.sends.Wait()
		close(sendsDone)
	}()
	t := time.NewTimer(w.o.Grace)
	defer t.Stop()
	select {
	case <-sendsDone:
	case <-t.C:
		w.log.Warn("shutdown grace period over; abandoning webhook attempts in progress", "grace", w.o.Grace)
		cancelHard()
		<-sendsDone
	}
	close(completions)
	<-completerDone
	return nil
}

// fetch reads or reclaims entries while there are free slots.
func (w *Worker) fetch(ctx, hard context.Context, completions chan<- completion) {
	var nextReclaim time.Time
	for ctx.Err() == nil {
		w.mu.Lock()
		free, held := w.o.MaxInFlight-w.held, w.held
		w.mu.Unlock()
		// Read in batches: each read costs a claim transaction, so wait
		// until a quarter of the slots are free (or nothing is held).
		if free <= 0 || (held > 0 && free < max(1, w.o.MaxInFlight/4)) {
			if w.parkSlow(hard) == 0 {
				// Wait for a slot, or until a destination may have
				// turned slow (all its slots busy for SlowAfter).
				t := time.NewTimer(w.o.SlowAfter)
				select {
				case <-w.wake:
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
			continue
		}
		limit := min(free, readBatch)
		var ds []queue.Delivery
		if !time.Now().Before(nextReclaim) {
			ds = w.reclaim(ctx, hard, limit)
			nextReclaim = time.Now().Add(w.o.ReclaimEvery)
		}
		if len(ds) == 0 {
			block := max(min(w.o.ReadBlock, time.Until(nextReclaim)), 10*time.Millisecond)
			var err error
			ds, err = w.o.Queue.Read(ctx, queue.Webhooks, w.consumer, limit, block)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.log.Warn("stream read failed", "err", err)
				wait(ctx, time.Second)
				continue
			}
		}
		if len(ds) > 0 {
			w.process(hard, ds, completions)
		}
	}
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// reclaim takes over entries idle for the visibility timeout and abandons
// the requests of entries delivered too often.
func (w *Worker) reclaim(ctx, hard context.Context, limit int) []queue.Delivery {
	claimed, dead, err := w.o.Queue.Claim(ctx, queue.Webhooks, w.consumer, w.o.VisibilityTimeout, limit)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reclaim failed", "err", err)
		}
		return nil
	}
	for _, d := range dead {
		reason := fmt.Sprintf("Given up after %d deliveries of its queue entry without a recorded attempt "+
			"(the worker sending it crashed or stalled each time).", d.Count)
		if err := w.o.Store.AbandonWebhookRequest(hard, d.Job.ID, reason); err != nil {
			w.log.Error("abandon dead-lettered webhook request failed", "request_id", d.Job.ID, "err", err)
			continue
		}
		w.m.settled.WithLabelValues("given_up").Inc()
		w.log.Warn("webhook request dead-lettered", "request_id", d.Job.ID, "deliveries", d.Count)
	}
	if len(claimed) > 0 {
		w.log.Info("reclaimed stale webhook entries", "entries", len(claimed))
	}
	return claimed
}

// process claims the rows of ds, settles the entries without work and
// places the claimed requests.
func (w *Worker) process(hard context.Context, ds []queue.Delivery, completions chan<- completion) {
	w.mu.Lock()
	fresh := ds[:0]
	for _, d := range ds {
		if _, ok := w.busy[d.StreamID]; !ok {
			fresh = append(fresh, d)
		}
	}
	w.seq++
	owner := fmt.Sprintf("%s:%s:%d", w.consumer, w.instance, w.seq)
	w.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	dels := make(map[int64][]queue.Delivery, len(fresh))
	ids := make([]int64, 0, len(fresh))
	for _, d := range fresh {
		if _, seen := dels[d.Job.ID]; !seen {
			ids = append(ids, d.Job.ID)
		}
		dels[d.Job.ID] = append(dels[d.Job.ID], d)
	}
	now := w.o.Now()
	rows, err := w.o.Store.ClaimWebhookRequests(hard, ids, owner, now, now.Add(w.o.VisibilityTimeout))
	if err != nil {
		w.log.Error("claim webhook requests failed; entries left for reclaim", "entries", len(fresh), "err", err)
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
		w.settleUnclaimed(hard, unclaimed, dels, now)
	}
	var parkNow []*job
	w.mu.Lock()
	for _, r := range rows {
		j := &job{req: r, owner: owner, dest: webhook.Destination(r.URL), dels: dels[r.ID]}
		for _, d := range j.dels {
			w.busy[d.StreamID] = struct{}{}
		}
		d := w.dests[j.dest]
		if d == nil {
			d = &destination{active: map[*job]time.Time{}}
			w.dests[j.dest] = d
		}
		switch {
		case len(d.active) < w.o.PerDestination:
			w.held++
			d.active[j] = time.Now()
			w.sends.Add(1)
			go w.sendLoop(hard, j, completions)
		case w.slowLocked(d) && len(d.waiting) >= w.o.PerDestination:
			j.due = w.parkDueLocked(d, now)
			parkNow = append(parkNow, j)
		default:
			w.held++
			d.waiting = append(d.waiting, j)
		}
	}
	w.mu.Unlock()
	if len(parkNow) > 0 {
		w.park(hard, parkNow)
	}
}

// maxParkSpread bounds how far parking spreads a slow destination's work.
const maxParkSpread = time.Hour

// parkDueLocked returns when the next request parked for d is due: after
// ParkDelay, spread by one attempt (its average duration, or the attempt
// timeout before any finished) per PerDestination requests already parked,
// so a slow receiver's backlog comes back at about the rate its slots can
// take it instead of all at once; w.mu must be held.
func (w *Worker) parkDueLocked(d *destination, now time.Time) time.Time {
	cost := d.cost
	if cost <= 0 {
		cost = webhook.Timeout
	}
	spread := min(time.Duration(d.parked/w.o.PerDestination)*cost, maxParkSpread)
	d.parked++
	return now.Add(w.o.ParkDelay + spread)
}

// slowLocked reports whether d is slow; w.mu must be held.
func (w *Worker) slowLocked(d *destination) bool {
	if d.slow {
		return true
	}
	if len(d.active) < w.o.PerDestination {
		return false
	}
	for _, started := range d.active {
		if time.Since(started) < w.o.SlowAfter {
			return false
		}
	}
	return true
}

// parkSlow hands back the waiting work of slow destinations when every
// slot is taken, and returns how many requests it parked.
func (w *Worker) parkSlow(hard context.Context) int {
	var back []*job
	now := w.o.Now()
	w.mu.Lock()
	for _, d := range w.dests {
		if len(d.waiting) > 0 && w.slowLocked(d) {
			for _, j := range d.waiting {
				j.due = w.parkDueLocked(d, now)
			}
			back = append(back, d.waiting...)
			w.held -= len(d.waiting)
			d.waiting = nil
		}
	}
	w.mu.Unlock()
	if len(back) > 0 {
		w.log.Info("parking webhook requests of slow receivers", "requests", len(back), "delay", w.o.ParkDelay)
		w.park(hard, back)
	}
	return len(back)
}

// park unlocks the rows of js without an attempt, each due at its due
// time, and moves their entries to the retry set. If SQL fails the entries
// stay pending and are reclaimed after the visibility timeout.
func (w *Worker) park(hard context.Context, js []*job) {
	if len(js) == 0 {
		return
	}
	defer w.untrack(js)
	rel := make([]store.WebhookRelease, len(js))
	for i, j := range js {
		rel[i] = store.WebhookRelease{RequestID: j.req.ID, Owner: j.owner, Due: j.due}
	}
	if _, err := w.o.Store.ReleaseWebhookRequests(hard, rel); err != nil {
		w.log.Error("park webhook requests failed; entries left for reclaim", "requests", len(js), "err", err)
		return
	}
	w.m.parked.Add(float64(len(js)))
	var extra []queue.Delivery
	for _, j := range js {
		if err := w.o.Queue.Retry(hard, queue.Webhooks, j.dels[0], j.due); err != nil {
			w.log.Warn("park entry in retry set failed; it stays pending", "request_id", j.req.ID, "err", err)
		}
		extra = append(extra, j.dels[1:]...)
	}
	if len(extra) > 0 {
		if err := w.o.Queue.Ack(hard, queue.Webhooks, extra...); err != nil {
			w.log.Warn("ack duplicate entries failed", "entries", len(extra), "err", err)
		}
	}
}

func (w *Worker) untrack(js []*job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range js {
		for _, d := range j.dels {
			delete(w.busy, d.StreamID)
		}
	}
}

// settleUnclaimed decides, per entry whose row could not be claimed,
// whether it carries no work (ack) or must be kept (retry set).
func (w *Worker) settleUnclaimed(hard context.Context, ids []int64, dels map[int64][]queue.Delivery, now time.Time) {
	locks, err := w.o.Store.WebhookRequestLocks(hard, ids)
	if err != nil {
		w.log.Error("look up unclaimable webhook requests failed; entries left for reclaim", "entries", len(ids), "err", err)
		return
	}
	byID := make(map[int64]store.WebhookRequestLock, len(locks))
	for _, l := range locks {
		byID[l.ID] = l
	}
	var acks []queue.Delivery
	for _, id := range ids {
		l, ok := byID[id]
		for _, d := range dels[id] {
			var due time.Time
			var reason string
			switch {
			case !ok:
				reason = "gone"
			case l.RetryAfter.After(now):
				reason, due = "not_due", l.RetryAfter
			case l.LockedBy != "" && !l.LockedUntil.Before(now):
				reason = "locked"
				if d.Count > 1 {
					// A reclaimed entry may be the only one left for a
					// request whose worker died: keep it until the lock ends.
					reason, due = "locked_redelivered", l.LockedUntil.Add(time.Millisecond)
				}
			default:
				reason, due = "raced", now
			}
			w.m.skipped.WithLabelValues(reason).Inc()
			if due.IsZero() {
				acks = append(acks, d)
				continue
			}
			if err := w.o.Queue.Retry(hard, queue.Webhooks, d, due); err != nil {
				w.log.Warn("keep entry in retry set failed; it stays pending", "request_id", id, "err", err)
			}
		}
	}
	if len(acks) > 0 {
		if err := w.o.Queue.Ack(hard, queue.Webhooks, acks...); err != nil {
			w.log.Warn("ack of entries without work failed; they stay pending", "entries", len(acks), "err", err)
		}
	}
}

// sendLoop attempts j, then the next request waiting for the same
// destination, until none waits.
func (w *Worker) sendLoop(hard context.Context, j *job, completions chan<- completion) {
	defer w.sends.Done()
	for j != nil {
		key := j.dest
		c := w.attempt(hard, j)
		completions <- c
		w.mu.Lock()
		d := w.dests[key]
		delete(d.active, j)
		w.held--
		if d.cost == 0 {
			d.cost = c.out.Duration
		} else {
			d.cost = (4*d.cost + c.out.Duration) / 5
		}
		switch c.out.Result {
		case string(webhook.OutcomeTimeout), string(webhook.OutcomeConnect), string(webhook.OutcomeDNS):
			d.slow = true
		default:
			d.slow = c.out.Duration >= w.o.SlowAfter
			if !d.slow {
				d.parked = 0
			}
		}
		j = nil
		if len(d.waiting) > 0 && !w.stopping {
			j = d.waiting[0]
			d.waiting[0] = nil
			d.waiting = d.waiting[1:]
			d.active[j] = time.Now() // stays counted in held
		} else if len(d.active) == 0 && len(d.waiting) == 0 {
			delete(w.dests, key)
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// attempt sends j once and decides what becomes of the request.
func (w *Worker) attempt(hard context.Context, j *job) completion {
	r := j.req
	res := w.o.Sender.Send(hard, webhook.Request{URL: r.URL, Event: r.Event, UUID: r.UUID, CreatedAt: r.CreatedAt, Payload: []byte(r.Payload)})
	w.m.attempts.WithLabelValues(string(res.Outcome)).Inc()
	w.m.seconds.WithLabelValues(string(res.Outcome)).Observe(res.Duration.Seconds())
	now := w.o.Now()
	out := store.WebhookAttemptOutcome{RequestID: r.ID, Owner: j.owner, StatusCode: res.Code(), Result: string(res.Outcome),
		Duration: res.Duration, Response: res.Excerpt, At: now}
	attempt := r.Attempts + 1
	switch delay, again := webhook.RetryDelay(attempt); {
	case res.OK():
		out.Done, out.Success = true, true
	case again && !res.Outcome.Permanent():
		out.RetryAfter = now.Add(delay)
		out.Error = fmt.Sprintf("Couldn't send to URL. Code received was %d", res.Code())
	default:
		out.Done = true
	}
	return completion{j: j, out: out}
}

// completer records outcomes in batches, then acks or retries their
// entries, only after the SQL commit.
func (w *Worker) completer(hard context.Context, completions <-chan completion) {
	batch := make([]completion, 0, completeBatch)
	for c := range completions {
		batch = append(batch[:0], c)
	drain:
		for len(batch) < completeBatch {
			select {
			case c, ok := <-completions:
				if !ok {
					break drain
				}
				batch = append(batch, c)
			default:
				break drain
			}
		}
		w.complete(hard, batch)
	}
}

func (w *Worker) complete(hard context.Context, batch []completion) {
	js := make([]*job, len(batch))
	outs := make([]store.WebhookAttemptOutcome, len(batch))
	for i, c := range batch {
		js[i], outs[i] = c.j, c.out
	}
	defer w.untrack(js)
	applied, err := w.o.Store.RecordWebhookAttempts(hard, outs)
	if err != nil {
		// Entries stay pending: after the visibility timeout they are
		// reclaimed and, the row locks having expired, sent again.
		w.log.Error("record webhook attempts failed; entries left for reclaim", "attempts", len(batch), "err", err)
		return
	}
	var acks []queue.Delivery
	for i, c := range batch {
		o := c.out
		switch {
		case !applied[i]:
			w.m.skipped.WithLabelValues("lost_lock").Inc()
			w.log.Warn("webhook attempt not recorded: the request's lock was lost", "request_id", o.RequestID)
			acks = append(acks, c.j.dels...)
		case o.Done:
			acks = append(acks, c.j.dels...)
			if o.Success {
				w.m.settled.WithLabelValues("delivered").Inc()
			} else {
				w.m.settled.WithLabelValues("given_up").Inc()
				w.log.Warn("webhook request given up", "request_id", o.RequestID, "url", c.j.req.URL,
					"event", c.j.req.Event, "attempts", c.j.req.Attempts+1, "result", o.Result, "status", o.StatusCode)
			}
		default:
			w.m.settled.WithLabelValues("retried").Inc()
			if err := w.o.Queue.Retry(hard, queue.Webhooks, c.j.dels[0], o.RetryAfter); err != nil {
				// The row is rescheduled in SQL; reclaim re-reads the entry
				// and finds it not due, and puts it back in the retry set.
				w.log.Warn("move entry to retry set failed; it stays pending", "request_id", o.RequestID, "err", err)
			}
			acks = append(acks, c.j.dels[1:]...)
		}
	}
	if len(acks) > 0 {
		if err := w.o.Queue.Ack(hard, queue.Webhooks, acks...); err != nil {
			w.log.Warn("ack webhook entries failed; they stay pending and are settled on reclaim", "entries", len(acks), "err", err)
		}
	}
}
