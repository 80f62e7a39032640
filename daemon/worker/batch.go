package worker

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// item is one claimed row and, when ok, the outcome its Handler returned.
type item struct {
	row *store.QueuedMessage
	out store.Outcome
	ok  bool
}

// completion is one destination batch handed to the completer.
type completion struct {
	c     *consumer
	items []item
	// dels are the entries of the batch's rows (topped-up rows have none).
	dels map[int64][]queue.Delivery
	// entries is how many of the consumer's in-flight entries to release.
	entries int
}

// runGroup tops a destination's rows up (batching), splits them by IP
// address, runs the Handler on each part and hands the results to the
// completer. It always sends exactly one completion.
func (k *kindRunner) runGroup(hard context.Context, c *consumer, owner, domain string, rows []*store.QueuedMessage,
	dels map[int64][]queue.Delivery, entries int) {
	o := k.w.o
	log := k.log.With("consumer", c.name, "domain", domain)
	if o.Postal.BatchQueuedMessages && len(rows) < o.Config.BatchSize {
		now := o.Now()
		extra, err := o.Store.ClaimQueuedForDomain(hard, k.scope, domain, owner, now,
			now.Add(o.Config.VisibilityTimeout.Duration()), o.Config.BatchSize-len(rows))
		if err != nil {
			log.Warn("batch top-up failed; delivering what was read", "err", err)
		}
		rows = append(rows, extra...)
	}
	stopKeepAlive := k.keepAlive(hard, c, owner, rows, dels, log)
	var parts [][]*store.QueuedMessage
	partOf := map[int64]int{}
	for _, r := range rows {
		i, ok := partOf[r.IPAddressID]
		if !ok {
			i = len(parts)
			partOf[r.IPAddressID] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], r)
	}
	items := make([]item, 0, len(rows))
	for _, part := range parts {
		outs, ok := k.call(hard, part, log)
		for i, r := range part {
			it := item{row: r, ok: ok}
			if ok {
				it.out = outs[i]
			}
			items = append(items, it)
		}
	}
	stopKeepAlive()
	c.completions <- completion{c: c, items: items, dels: dels, entries: entries}
}

// keepAlive extends the SQL locks of rows and resets the idle time of their
// stream entries every third of the visibility timeout until stop is
// called, so that a batch that is slow (a slow destination, long SMTP
// timeouts) is not reclaimed and sent a second time by another worker.
func (k *kindRunner) keepAlive(ctx context.Context, c *consumer, owner string, rows []*store.QueuedMessage,
	dels map[int64][]queue.Delivery, log *slog.Logger) (stop func()) {
	o := k.w.o
	vis := o.Config.VisibilityTimeout.Duration()
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var entries []queue.Delivery
	for _, ds := range dels {
		entries = append(entries, ds...)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(vis / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := o.Store.ExtendLocks(ctx, owner, ids, o.Now().Add(vis)); err != nil && ctx.Err() == nil {
				log.Warn("extending locks of a slow batch failed", "messages", len(ids), "err", err)
			}
			if err := o.Queue.Touch(ctx, k.kind, c.name, entries...); err != nil && ctx.Err() == nil {
				log.Warn("touching entries of a slow batch failed", "entries", len(entries), "err", err)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// call runs the Handler on one batch. It reports false, after logging why,
// when the Handler panicked, returned the wrong number of outcomes or was
// abandoned because the shutdown grace period ended.
func (k *kindRunner) call(hard context.Context, batch []*store.QueuedMessage, log *slog.Logger) ([]store.Outcome, bool) {
	kind := string(k.kind)
	k.w.m.batchSize.WithLabelValues(kind).Observe(float64(len(batch)))
	type result struct {
		outs     []store.Outcome
		panicked any
		stack    []byte
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{panicked: p, stack: debug.Stack()}
			}
		}()
		done <- result{outs: k.h.Handle(hard, batch)}
	}()
	select {
	case r := <-done:
		k.w.m.handlerSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		if r.panicked != nil {
			log.Error("handler panicked; its entries will be reclaimed", "messages", len(batch), "panic", r.panicked,
				"stack", string(r.stack))
			return nil, false
		}
		if len(r.outs) != len(batch) {
			log.Error("handler returned the wrong number of outcomes; its entries will be reclaimed",
				"messages", len(batch), "outcomes", len(r.outs))
			return nil, false
		}
		return r.outs, true
	case <-hard.Done():
		log.Warn("handler abandoned at shutdown; its rows stay locked until the visibility timeout", "messages", len(batch))
		return nil, false
	}
}
