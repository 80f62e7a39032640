// Package cron is the cron role: a scheduler of named periodic tasks that
// acts only while its process holds the "cron" lease (package lease).
//
// # Contract
//
//   - Only the lease holder runs tasks. Each term runs every task on its
//     schedule; when the term ends (lease lost, trust window over, or
//     shutdown) the tasks' context is cancelled and the term returns only
//     after every running task has returned, so tasks must honour their
//     context. A standby that takes over resumes the schedule.
//   - Schedule: a task runs at the instants t with t = k x Every + Offset,
//     counted from the zero time; for an Every that divides a day this is
//     clock-aligned in UTC (Every 1h, Offset 15m: at quarter past each hour).
//   - Once per interval: at the start of a term the scheduler reads each
//     task's last run record (package status) and resumes with the slot
//     after the one that run was for, so a takeover neither repeats a slot
//     the previous holder completed nor skips a slot it missed (a slot
//     missed while no one held the lease runs once, at once). A run that
//     was cut off by a crash before it was recorded may run again: tasks
//     are written to be idempotent.
//   - Records: every run is recorded with status.Board.RecordCronRun: start,
//     duration, outcome, error, and the fencing token and owner of the term
//     it ran in. A task that fails is recorded as failed and runs again at
//     its next slot; a task that panics is recovered, recorded as failed
//     with the panic, and the process carries on.
package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/status"
)

// Task is one named periodic job.
type Task struct {
	// Name identifies the task in run records: no spaces or colons.
	Name string
	// Every is the interval between runs; Offset shifts the slots (see the
	// package documentation). 0 <= Offset < Every.
	Every  time.Duration
	Offset time.Duration
	// Run does the work; it must return promptly when ctx is cancelled.
	Run func(ctx context.Context) error
}

// Board is where run records go (package status).
type Board interface {
	RecordCronRun(ctx context.Context, r status.CronRun) error
	CronRuns(ctx context.Context) ([]status.TaskRuns, error)
}

// Lease runs fn only while this process holds the cron lease (package
// lease), with the term's fencing token; fn's context ends with the term.
type Lease interface {
	Run(ctx context.Context, fn func(ctx context.Context, token int64) error) error
	Owner() string
}

// Options configures a Cron.
type Options struct {
	Board Board
	Lease Lease
	Tasks []Task
	Log   *slog.Logger
	// Registerer receives the scheduler's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// recordTimeout bounds writing one run record, also after the term ended
// (the run happened and is reported truthfully).
const recordTimeout = 5 * time.Second

// Cron is the cron role. Build it with New and start it with Run.
type Cron struct {
	o        Options
	log      *slog.Logger
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	leading  prometheus.Gauge
}

// New checks o and returns a Cron. It fails when Board or Lease is
// missing, or a task has an invalid or duplicate name, a non-positive
// interval, an offset outside [0, Every) or no function.
func New(o Options) (*Cron, error) {
	if o.Board == nil || o.Lease == nil {
		return nil, errors.New("cron: Board and Lease are required")
	}
	seen := map[string]bool{}
	for _, t := range o.Tasks {
		switch {
		case t.Name == "" || strings.ContainsAny(t.Name, ": \t\n"):
			return nil, fmt.Errorf("cron: task name %q must be non-empty without spaces or colons", t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("cron: task %q registered twice", t.Name)
		case t.Every <= 0:
			return nil, fmt.Errorf("cron: task %q: interval must be positive", t.Name)
		case t.Offset < 0 || t.Offset >= t.Every:
			return nil, fmt.Errorf("cron: task %q: offset %s outside [0, %s)", t.Name, t.Offset, t.Every)
		case t.Run == nil:
			return nil, fmt.Errorf("cron: task %q has no function", t.Name)
		}
		seen[t.Name] = true
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cron{
		o:   o,
		log: o.Log.With("role", "cron"),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_cron_runs_total",
			Help: "Cron task runs by task and outcome (ok, error)."}, []string{"task", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postal_cron_run_seconds",
			Help: "Duration of cron task runs.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"task"}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postal_cron_leading",
			Help: "1 while this process holds the cron lease."}),
	}
	if o.Registerer != nil {
		for _, col := range []prometheus.Collector{c.runs, c.duration, c.leading} {
			if err := o.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("cron: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Run campaigns for the lease until ctx ends and runs the tasks during
// each term. It returns nil when ctx ends, or the lease's error.
func (c *Cron) Run(ctx context.Context) error {
	if err := c.o.Lease.Run(ctx, c.lead); err != nil {
		return fmt.Errorf("cron: %w", err)
	}
	return nil
}

// lead is one term: one goroutine per task, all stopped with the term.
func (c *Cron) lead(ctx context.Context, token int64) error {
	owner := c.o.Lease.Owner()
	log := c.log.With("token", token)
	log.Info("cron leading", "tasks", len(c.o.Tasks))
	c.leading.Set(1)
	defer c.leading.Set(0)
	last := c.lastRuns(ctx, log)
	var wg sync.WaitGroup
	for _, t := range c.o.Tasks {
		next := NextSlot(c.o.Now(), t.Every, t.Offset)
		if started, ok := last[t.Name]; ok {
			next = resumeSlot(started, t.Every, t.Offset)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.schedule(ctx, t, next, token, owner, log.With("task", t.Name))
		}()
	}
	wg.Wait()
	log.Info("cron term over", "cause", context.Cause(ctx))
	return nil
}

// lastRuns returns each task's last recorded start; on failure, none (the
// schedule then starts at the next slot, so nothing runs twice).
func (c *Cron) lastRuns(ctx context.Context, log *slog.Logger) map[string]time.Time {
	out := map[string]time.Time{}
	all, err := c.o.Board.CronRuns(ctx)
	if err != nil {
		log.Warn("reading last cron runs failed; starting every task at its next slot", "err", err)
		return out
	}
	for _, tr := range all {
		if !tr.Last.Started.IsZero() {
			out[tr.Task] = tr.Last.Started
		}
	}
	return out
}

// schedule runs t at next and at every slot after, until ctx ends.
func (c *Cron) schedule(ctx context.Context, t Task, next time.Time, token int64, owner string, log *slog.Logger) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(max(next.Sub(c.o.Now()), 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		started := c.o.Now()
		_ = c.runTask(ctx, t, token, owner, log)
		next = NextSlot(started, t.Every, t.Offset)
	}
}

// RunTask runs t once now, outside the schedule, recovering a panic, and
// records the run with the given fencing token and the lease's owner. It
// returns the task's error (a panic becomes an error); a failure to record
// is logged, not returned. The caller is responsible for holding the lease.
func (c *Cron) RunTask(ctx context.Context, t Task, token int64) error {
	return c.runTask(ctx, t, token, c.o.Lease.Owner(), c.log.With("token", token, "task", t.Name))
}

func (c *Cron) runTask(ctx context.Context, t Task, token int64, owner string, log *slog.Logger) error {
	started := c.o.Now()
	err := runRecovered(ctx, t)
	dur := c.o.Now().Sub(started)
	rec := status.CronRun{Task: t.Name, Started: started, Duration: dur, OK: err == nil, Token: token, Owner: owner}
	outcome := "ok"
	if err != nil {
		rec.Error = err.Error()
		outcome = "error"
		log.Error("cron task failed", "duration", dur, "err", err)
	} else {
		log.Info("cron task done", "duration", dur)
	}
	c.runs.WithLabelValues(t.Name, outcome).Inc()
	c.duration.WithLabelValues(t.Name).Observe(dur.Seconds())
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if rerr := c.o.Board.RecordCronRun(rctx, rec); rerr != nil {
		log.Warn("recording cron run failed", "err", rerr)
	}
	return err
}

func runRecovered(ctx context.Context, t Task) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("task %s panicked: %v\n%s", t.Name, p, debug.Stack())
		}
	}()
	return t.Run(ctx)
}

// NextSlot returns the first slot of (every, offset) strictly after t.
func NextSlot(t time.Time, every, offset time.Duration) time.Time {
	s := t.Add(-offset).Truncate(every).Add(offset)
	for !s.After(t) {
		s = s.Add(every)
	}
	return s
}

// resumeSlot is where a new term resumes a task last started at started:
// the slot after the one that run was for. A run starts a little after its
// slot, and another holder's clock may differ a little, so the run is
// attributed to the latest slot at or before started + a quarter interval
// (at most 5 s).
func resumeSlot(started time.Time, every, offset time.Duration) time.Time {
	tol := min(every/4, 5*time.Second)
	return NextSlot(started.Add(tol), every, offset)
}
