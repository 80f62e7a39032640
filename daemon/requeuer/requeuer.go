// Package requeuer is the requeuer role: the singleton that keeps Redis
// dispatch in step with SQL, the system of record. It acts only while it
// holds the "requeuer" lease (package lease); standbys keep campaigning, and
// a holder stops acting as soon as its term's context ends (lost lease or
// trust window over), before another process can take the lease.
//
// While leading it:
//
//   - every requeuer.interval moves due members of the retry set to their
//     streams (queue.MoveDue, atomic per member: never lost, never doubled);
//   - every requeuer.reconcile_interval reconciles: it pages through the
//     queued messages that are due and unlocked (or whose lock expired) in
//     SQL, asks Redis which of them have no inflight marker (in no stream,
//     pending list or retry set; e.g. after Redis lost its data, or a worker
//     died holding rows it had claimed by batching) and enqueues those
//     again; due, unlocked webhook_requests rows without an inflight marker
//     are put on the webhooks stream the same way. Rows younger than
//     Options.Settle are left for the next round, so
//     a message committed by intake a moment ago is not dispatched twice. A
//     queued message that is due but in no stream is thus dispatched within
//     reconcile_interval + Settle (20 s with the defaults);
//   - on each reconciliation it also prunes stream consumers that have been
//     idle with nothing pending for long (every worker restart leaves its
//     consumer names behind).
//
// Stale work: entries pending with a dead worker are reclaimed by live
// workers (package worker); rows locked by a dead worker become due again
// when their lock expires and are re-dispatched by reconciliation; locks
// older than postal.queued_message_lock_stale_days are released by the cron
// task "tidy queued messages". Postal deletes such messages; we never drop
// work.
//
// Reconciliation may enqueue an entry for a row that is dispatched already
// (a race with an ack or a retry); the worker's compare-and-set claim makes
// such a duplicate a no-op.
package requeuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// Store is what the requeuer needs of the database (package store).
type Store interface {
	DueQueued(ctx context.Context, now time.Time, afterID int64, limit int) ([]*store.QueuedMessage, error)
	DueWebhookRequests(ctx context.Context, now time.Time, afterID int64, limit int) ([]int64, error)
}

// Queue is what the requeuer needs of the dispatch streams (package queue).
type Queue interface {
	MoveDue(ctx context.Context, now time.Time, limit int) (int, error)
	Missing(ctx context.Context, kind queue.Kind, ids []int64) ([]int64, error)
	Enqueue(ctx context.Context, kind queue.Kind, jobs ...queue.Job) error
	PruneConsumers(ctx context.Context, kind queue.Kind, idle time.Duration) (int, error)
}

// Lease runs fn only while this process holds the requeuer lease (package
// lease), with the term's fencing token; fn's context ends with the term.
type Lease interface {
	Run(ctx context.Context, fn func(ctx context.Context, token int64) error) error
}

// Defaults for Options.
const (
	DefaultSettle = 5 * time.Second
	// reconcilePage is how many SQL rows one reconciliation step looks at.
	reconcilePage = 1000
	// moveRounds bounds the MoveDue calls of one MoveDueOnce.
	moveRounds = 100
)

// Options configures a Requeuer.
type Options struct {
	// Config is the requeuer section: interval, reconcile_interval. Zero
	// values take the defaults of config.Defaults.
	Config config.Requeuer
	// Worker supplies visibility_timeout (how long a consumer must be idle
	// before it may be pruned is the longer of ten of those and an hour).
	Worker config.Worker
	Store  Store
	Queue  Queue
	Lease  Lease
	// Settle is how old a due row must be before reconciliation dispatches
	// it (default 5 s).
	Settle time.Duration
	Log    *slog.Logger
	// Registerer receives the requeuer's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Requeuer is the requeuer role. Build it with New and start it with Run;
// MoveDueOnce and ReconcileOnce run one step directly.
type Requeuer struct {
	o         Options
	log       *slog.Logger
	moved     prometheus.Counter
	requeued  *prometheus.CounterVec
	leading   prometheus.Gauge
	lastToken prometheus.Gauge
}

// New checks o, fills in defaults and returns a Requeuer. It fails when
// Store, Queue or Lease is missing or a setting is negative.
func New(o Options) (*Requeuer, error) {
	if o.Store == nil || o.Queue == nil || o.Lease == nil {
		return nil, errors.New("requeuer: Store, Queue and Lease are required")
	}
	d := config.Defaults()
	if o.Config.Interval == 0 {
		o.Config.Interval = d.Requeuer.Interval
	}
	if o.Config.ReconcileInterval == 0 {
		o.Config.ReconcileInterval = d.Requeuer.ReconcileInterval
	}
	if o.Worker.VisibilityTimeout == 0 {
		o.Worker.VisibilityTimeout = d.Worker.VisibilityTimeout
	}
	if o.Config.Interval < 0 || o.Config.ReconcileInterval < 0 || o.Worker.VisibilityTimeout < 0 || o.Settle < 0 {
		return nil, errors.New("requeuer: negative setting")
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Requeuer{
		o:   o,
		log: o.Log.With("role", "requeuer"),
		moved: prometheus.NewCounter(prometheus.CounterOpts{Name: "postal_requeuer_moved_total",
			Help: "Due retries moved from the retry set to their streams."}),
		requeued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_requeuer_reconciled_total",
			Help: "Due queued rows found in no stream, pending list or retry set and dispatched again."}, []string{"kind"}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postal_requeuer_leading",
			Help: "1 while this process holds the requeuer lease."}),
		lastToken: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postal_requeuer_fencing_token",
			Help: "Fencing token of this process's latest requeuer term."}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.moved, r.requeued, r.leading, r.lastToken} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("requeuer: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Run campaigns for the lease until ctx ends and, during each term, moves
// due retries and reconciles as the package documentation describes. Step
// failures are logged and retried at the next tick. It returns nil when ctx
// ends, or the lease's error.
func (r *Requeuer) Run(ctx context.Context) error {
	if err := r.o.Lease.Run(ctx, r.lead); err != nil {
		return fmt.Errorf("requeuer: %w", err)
	}
	return nil
}

// lead is one term: it acts until the term's context ends.
func (r *Requeuer) lead(ctx context.Context, token int64) error {
	log := r.log.With("token", token)
	log.Info("requeuer leading")
	r.leading.Set(1)
	r.lastToken.Set(float64(token))
	defer r.leading.Set(0)
	move := time.NewTicker(r.o.Config.Interval.Duration())
	defer move.Stop()
	reconcile := time.NewTicker(r.o.Config.ReconcileInterval.Duration())
	defer reconcile.Stop()
	r.step(ctx, log, true)
	for {
		select {
		case <-ctx.Done():
			log.Info("requeuer term over", "cause", context.Cause(ctx))
			return nil
		case <-move.C:
			r.step(ctx, log, false)
		case <-reconcile.C:
			r.step(ctx, log, true)
		}
	}
}

// step moves due retries and, with full, reconciles and prunes consumers.
// Errors are logged, not returned: the next tick tries again.
func (r *Requeuer) step(ctx context.Context, log *slog.Logger, full bool) {
	if _, err := r.MoveDueOnce(ctx); err != nil && ctx.Err() == nil {
		log.Warn("move due retries failed", "err", err)
	}
	if !full {
		return
	}
	res, err := r.ReconcileOnce(ctx)
	if err != nil && ctx.Err() == nil {
		log.Warn("reconciliation failed", "err", err)
	}
	if res.Dispatched > 0 {
		log.Info("reconciliation dispatched lost work", "scanned", res.Scanned, "dispatched", res.Dispatched)
	}
	idle := max(10*r.o.Worker.VisibilityTimeout.Duration(), time.Hour)
	for _, kind := range queue.Kinds() {
		if ctx.Err() != nil {
			return
		}
		if n, err := r.o.Queue.PruneConsumers(ctx, kind, idle); err != nil {
			log.Warn("prune consumers failed", "queue", string(kind), "err", err)
		} else if n > 0 {
			log.Info("pruned idle consumers", "queue", string(kind), "consumers", n)
		}
	}
}

// MoveDueOnce moves every retry due now to its stream, in rounds of
// queue.DefaultMoveMax (at most 100 rounds), and returns how many it moved.
// It returns a wrapped error when Redis fails, with the count moved so far.
func (r *Requeuer) MoveDueOnce(ctx context.Context) (int, error) {
	total := 0
	for range moveRounds {
		n, err := r.o.Queue.MoveDue(ctx, r.o.Now(), queue.DefaultMoveMax)
		total += n
		r.moved.Add(float64(n))
		if err != nil {
			return total, fmt.Errorf("requeuer: move due retries: %w", err)
		}
		if n < queue.DefaultMoveMax {
			break
		}
	}
	return total, nil
}

// ReconcileResult reports one reconciliation.
type ReconcileResult struct {
	// Scanned counts due, unlocked rows looked at.
	Scanned int `json:"scanned"`
	// Dispatched counts rows that were in no stream, pending list or retry
	// set and were enqueued again.
	Dispatched int `json:"dispatched"`
}

// ReconcileOnce pages through the queued messages due at now - Settle and
// unlocked, in pages of 1000, and enqueues those Redis has no inflight
// marker for; then the same for webhook requests (on the webhooks stream). It returns what it did, with a wrapped error when SQL or
// Redis fails (the pages before the failure stay dispatched).
func (r *Requeuer) ReconcileOnce(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	cutoff := r.o.Now().Add(-r.o.Settle)
	var after int64
	for {
		rows, err := r.o.Store.DueQueued(ctx, cutoff, after, reconcilePage)
		if err != nil {
			return res, fmt.Errorf("requeuer: reconcile: %w", err)
		}
		res.Scanned += len(rows)
		byKind := map[queue.Kind][]*store.QueuedMessage{}
		for _, q := range rows {
			kind, ok := queue.KindOfScope(q.Scope)
			if !ok {
				r.log.Warn("queued message with an unknown scope", "queued_id", q.ID, "scope", q.Scope)
				continue
			}
			byKind[kind] = append(byKind[kind], q)
		}
		for _, kind := range queue.Kinds() {
			qs := byKind[kind]
			if len(qs) == 0 {
				continue
			}
			n, err := r.dispatchMissing(ctx, kind, qs)
			res.Dispatched += n
			if err != nil {
				return res, err
			}
		}
		if len(rows) < reconcilePage {
			break
		}
		after = rows[len(rows)-1].ID
	}
	return r.reconcileWebhooks(ctx, cutoff, res)
}

// reconcileWebhooks dispatches due, unlocked webhook requests that Redis
// has no inflight marker for.
func (r *Requeuer) reconcileWebhooks(ctx context.Context, cutoff time.Time, res ReconcileResult) (ReconcileResult, error) {
	var after int64
	for {
		ids, err := r.o.Store.DueWebhookRequests(ctx, cutoff, after, reconcilePage)
		if err != nil {
			return res, fmt.Errorf("requeuer: reconcile webhooks: %w", err)
		}
		res.Scanned += len(ids)
		if len(ids) > 0 {
			missing, err := r.o.Queue.Missing(ctx, queue.Webhooks, ids)
			if err != nil {
				return res, fmt.Errorf("requeuer: reconcile webhooks: %w", err)
			}
			if len(missing) > 0 {
				jobs := make([]queue.Job, len(missing))
				for i, id := range missing {
					jobs[i] = queue.Job{ID: id}
				}
				if err := r.o.Queue.Enqueue(ctx, queue.Webhooks, jobs...); err != nil {
					return res, fmt.Errorf("requeuer: reconcile webhooks: %w", err)
				}
				r.requeued.WithLabelValues(string(queue.Webhooks)).Add(float64(len(jobs)))
				res.Dispatched += len(jobs)
			}
		}
		if len(ids) < reconcilePage {
			return res, nil
		}
		after = ids[len(ids)-1]
	}
}

func (r *Requeuer) dispatchMissing(ctx context.Context, kind queue.Kind, qs []*store.QueuedMessage) (int, error) {
	ids := make([]int64, len(qs))
	domain := make(map[int64]string, len(qs))
	for i, q := range qs {
		ids[i] = q.ID
		domain[q.ID] = q.Domain
	}
	missing, err := r.o.Queue.Missing(ctx, kind, ids)
	if err != nil {
		return 0, fmt.Errorf("requeuer: reconcile %s: %w", kind, err)
	}
	if len(missing) == 0 {
		return 0, nil
	}
	jobs := make([]queue.Job, len(missing))
	for i, id := range missing {
		jobs[i] = queue.Job{ID: id, Domain: domain[id]}
	}
	if err := r.o.Queue.Enqueue(ctx, kind, jobs...); err != nil {
		return 0, fmt.Errorf("requeuer: reconcile %s: %w", kind, err)
	}
	r.requeued.WithLabelValues(string(kind)).Add(float64(len(jobs)))
	return len(jobs), nil
}
