// Package source is where the TUI (and `postalctl status`) get their data:
// the Source interface, a Snapshot of everything an operator watches, a Live
// implementation that reads the database and Redis, and a Fake for tests.
//
// Contract: Live.Snapshot never fails because one side is down. Each side
// (database, Redis) is read under its own timeout, concurrently; a side that
// does not answer is reported in Snapshot.Database or Snapshot.Redis with its
// error and its fields stay empty, while the other side's data is still
// returned. Snapshot returns an error only when ctx itself has ended.
package source

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
)

// Source provides snapshots. Implementations must be safe to call from a
// goroutine other than the one that built them.
type Source interface {
	// Snapshot reads the current state. It returns an error only when
	// nothing could be read at all (ctx ended).
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is what the operator screens show, read at Taken.
type Snapshot struct {
	// Taken is when the snapshot was read; screens measure ages from it.
	Taken time.Time
	// Database and Redis say whether each side answered.
	Database Health
	Redis    Health
	// Schema is the database schema against this binary's; nil when the
	// database did not answer.
	Schema *store.SchemaStatus
	// SQLQueue counts queued_messages rows; nil when the database did not
	// answer.
	SQLQueue *store.QueueCounts
	// Processes are the postald processes with a live heartbeat.
	Processes []status.Process
	// Leases lists LeaseNames in order, held or not.
	Leases []Lease
	// Cron lists every cron task's record, by task name.
	Cron []status.TaskRuns
	// Queue is the Redis side of the queue; nil when Redis did not answer.
	Queue *queue.Stats
	// DeadLetters are the most recent dead letters, newest first.
	DeadLetters []queue.DeadLetter
	// RetryShape is the retry set by due time (RetryWithin, then later);
	// nil when Redis did not answer.
	RetryShape []queue.RetryBucket

	// Throughput is the last ThroughputMinutes minutes, per minute, the
	// last bucket being the current (partial) minute: the per-minute
	// counters kept in Redis, and for the minutes they cannot vouch for
	// (Redis lost them, or was down) the same figures computed from SQL.
	// nil when neither side could provide them.
	Throughput *store.Series
	// ThroughputFrom says where Throughput came from: ThroughputRedis,
	// ThroughputSQL or ThroughputMixed ("" when Throughput is nil).
	ThroughputFrom string
	// Shape is the SQL backlog by destination and age (the ShapeDomains
	// largest); nil when the database did not answer.
	Shape *store.QueueShape
	// WebhookFailures are the most recent webhook requests whose last
	// attempt failed, newest first.
	WebhookFailures []*store.WebhookRequest
}

// Values of Snapshot.ThroughputFrom.
const (
	ThroughputRedis = "redis"
	ThroughputSQL   = "sql"
	ThroughputMixed = "redis+sql"
)

// Sizes of the dashboard's figures.
const (
	ThroughputMinutes = 60
	ShapeDomains      = 50
	WebhookFailures   = 10
)

// RetryWithin are the due-time bounds of Snapshot.RetryShape.
func RetryWithin() []time.Duration {
	return []time.Duration{0, time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour}
}

// Health says whether one side answered.
type Health struct {
	OK bool
	// Error is why it did not ("" when OK).
	Error string
	// StaleSince, when set on a side that did not answer, says the side's
	// fields are the last good read, taken then (the TUI keeps them on
	// screen); zero when they are empty.
	StaleSince time.Time
}

// Lease is who holds a named lease.
type Lease struct {
	Name string
	// Owner is "" when nobody holds the lease.
	Owner string
	// Token is the fencing token of the holder's term.
	Token int64
	// TTL is the time left before the lease expires unless renewed.
	TTL time.Duration
}

// Held reports whether somebody holds the lease.
func (l Lease) Held() bool { return l.Owner != "" }

// LeaseNames returns the leases postald takes: the cron role's and the
// requeuer's.
func LeaseNames() []string { return []string{"cron", "requeuer"} }

// Store is the part of *store.Store a Live source reads.
type Store interface {
	Ping(ctx context.Context) error
	SchemaStatus(ctx context.Context) (store.SchemaStatus, error)
	CountQueued(ctx context.Context, now time.Time) (store.QueueCounts, error)
	QueueShape(ctx context.Context, now time.Time, limit int) (store.QueueShape, error)
	Throughput(ctx context.Context, serverID int64, start time.Time, step time.Duration, n int) (store.Series, error)
	FailedWebhookRequests(ctx context.Context, limit int) ([]*store.WebhookRequest, error)
}

// Defaults for LiveOptions.
const (
	DefaultTimeout     = 3 * time.Second
	DefaultDeadLetters = 20
)

// LiveOptions configures a Live source.
type LiveOptions struct {
	// Store is the database; nil when it could not be opened, in which case
	// StoreErr says why.
	Store    Store
	StoreErr error
	// Redis and Keys address the Redis side; Redis is required.
	Redis redis.UniversalClient
	Keys  redisconn.Keys
	// DeadLetters is how many recent dead letters to read; default 20.
	DeadLetters int
	// Timeout bounds each side's reads; default 3 s.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Live reads a real database and Redis. It is safe for concurrent use.
type Live struct {
	o     LiveOptions
	board *status.Board
	queue *queue.Queue
}

// NewLive returns a Live source. It contacts nothing until Snapshot.
func NewLive(o LiveOptions) *Live {
	if o.DeadLetters <= 0 {
		o.DeadLetters = DefaultDeadLetters
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Live{o: o, board: status.NewBoard(o.Redis, o.Keys), queue: queue.New(queue.Options{Client: o.Redis, Keys: o.Keys})}
}

// Snapshot reads both sides concurrently, each under the configured
// timeout. It returns ctx's error only when ctx has ended.
func (l *Live) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Taken: l.o.Now()}
	var wg sync.WaitGroup
	var minutes *queue.Minutes
	wg.Go(func() { l.readSQL(ctx, &snap) })
	wg.Go(func() { minutes = l.readRedis(ctx, &snap) })
	wg.Wait()
	l.throughput(ctx, &snap, minutes)
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return snap, nil
}

// throughput fills Snapshot.Throughput from the per-minute counters read
// from Redis (minutes, nil when Redis did not answer), and from SQL for the
// minutes the counters cannot vouch for: the minutes up to and including
// the one their since mark falls in, every minute when the mark is missing.
// SQL is asked only when such minutes exist and the database answered.
func (l *Live) throughput(ctx context.Context, snap *Snapshot, minutes *queue.Minutes) {
	start := snap.Taken.Truncate(time.Minute).Add(-(ThroughputMinutes - 1) * time.Minute)
	missing := ThroughputMinutes // the first `missing` minutes need SQL
	if minutes != nil {
		missing = 0
		for missing < ThroughputMinutes && !minutes.Complete(missing) {
			missing++
		}
	}
	series := store.Series{Start: start, Step: time.Minute}
	for _, p := range []*[]int64{&series.Accepted, &series.Sent, &series.SoftFail, &series.HardFail, &series.Held, &series.Bounced} {
		*p = make([]int64, ThroughputMinutes)
	}
	from := ThroughputRedis
	if missing > 0 {
		if !snap.Database.OK || snap.Schema == nil || snap.Schema.Current == 0 {
			return // no source for those minutes: show nothing rather than false zeros
		}
		sctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
		defer cancel()
		old, err := l.o.Store.Throughput(sctx, 0, start, time.Minute, missing)
		if err != nil {
			snap.Database = Health{Error: err.Error()}
			return
		}
		copy(series.Accepted, old.Accepted)
		copy(series.Sent, old.Sent)
		copy(series.SoftFail, old.SoftFail)
		copy(series.HardFail, old.HardFail)
		copy(series.Held, old.Held)
		copy(series.Bounced, old.Bounced)
		from = ThroughputMixed
		if missing == ThroughputMinutes {
			from = ThroughputSQL
		}
	}
	if minutes != nil {
		for i := missing; i < ThroughputMinutes; i++ {
			c := minutes.Counts[i]
			series.Accepted[i], series.Sent[i], series.SoftFail[i] = c.Accepted, c.Sent, c.SoftFail
			series.HardFail[i], series.Held[i], series.Bounced[i] = c.HardFail, c.Held, c.Bounced
		}
	}
	snap.Throughput, snap.ThroughputFrom = &series, from
}

// readSQL fills the database fields; it touches no Redis field.
func (l *Live) readSQL(ctx context.Context, snap *Snapshot) {
	if l.o.Store == nil {
		err := l.o.StoreErr
		if err == nil {
			err = fmt.Errorf("no database configured")
		}
		snap.Database = Health{Error: err.Error()}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	fail := func(err error) { snap.Database = Health{Error: err.Error()} }
	if err := l.o.Store.Ping(ctx); err != nil {
		fail(err)
		return
	}
	schema, err := l.o.Store.SchemaStatus(ctx)
	if err != nil {
		fail(fmt.Errorf("read schema version: %w", err))
		return
	}
	snap.Schema = &schema
	if schema.Current == 0 {
		// Not migrated yet: there is no queue table to count.
		snap.Database = Health{OK: true}
		return
	}
	counts, err := l.o.Store.CountQueued(ctx, snap.Taken)
	if err != nil {
		fail(err)
		return
	}
	snap.SQLQueue = &counts
	shape, err := l.o.Store.QueueShape(ctx, snap.Taken, ShapeDomains)
	if err != nil {
		fail(err)
		return
	}
	snap.Shape = &shape
	hooks, err := l.o.Store.FailedWebhookRequests(ctx, WebhookFailures)
	if err != nil {
		fail(err)
		return
	}
	snap.WebhookFailures = hooks
	snap.Database = Health{OK: true}
}

// readRedis fills the Redis fields; it touches no database field. It
// returns the per-minute counters of the last ThroughputMinutes minutes,
// nil when they could not be read.
func (l *Live) readRedis(ctx context.Context, snap *Snapshot) *queue.Minutes {
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	if err := redisconn.Ping(ctx, l.o.Redis); err != nil {
		snap.Redis = Health{Error: err.Error()}
		return nil
	}
	var errs []error
	procs, err := l.board.Processes(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	snap.Processes = procs
	for _, name := range LeaseNames() {
		owner, token, ttl, err := lease.Holder(ctx, l.o.Redis, l.o.Keys, name)
		if err != nil {
			errs = append(errs, err)
		}
		snap.Leases = append(snap.Leases, Lease{Name: name, Owner: owner, Token: token, TTL: ttl})
	}
	runs, err := l.board.CronRuns(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	snap.Cron = runs
	stats, err := l.queue.Inspect(ctx)
	if err != nil {
		errs = append(errs, err)
	} else {
		snap.Queue = &stats
	}
	dead, err := l.queue.DeadLetters(ctx, l.o.DeadLetters)
	if err != nil {
		errs = append(errs, err)
	}
	snap.DeadLetters = dead
	retry, err := l.queue.RetryShape(ctx, snap.Taken, RetryWithin())
	if err != nil {
		errs = append(errs, err)
	}
	snap.RetryShape = retry
	var minutes *queue.Minutes
	m, err := l.queue.ReadMinutes(ctx, snap.Taken.Add(-(ThroughputMinutes-1)*time.Minute), ThroughputMinutes)
	if err != nil {
		errs = append(errs, err)
	} else {
		minutes = &m
	}
	if len(errs) > 0 {
		snap.Redis = Health{Error: errs[0].Error()}
		return minutes
	}
	snap.Redis = Health{OK: true}
	return minutes
}

// Fake is a Source that returns a fixed snapshot (or error) and counts its
// calls; tests and demos use it.
type Fake struct {
	mu    sync.Mutex
	snap  Snapshot
	err   error
	calls int
}

// NewFake returns a Fake that answers snap.
func NewFake(snap Snapshot) *Fake { return &Fake{snap: snap} }

// Set replaces what the Fake answers from now on.
func (f *Fake) Set(snap Snapshot, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap, f.err = snap, err
}

// Calls returns how many times Snapshot was called.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Snapshot returns the configured snapshot or error.
func (f *Fake) Snapshot(context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.snap, f.err
}
