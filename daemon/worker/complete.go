package worker

import (
	"context"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

const (
	// completeMaxOutcomes caps the outcomes recorded in one transaction.
	completeMaxOutcomes = 1000
	// completeTimeout bounds recording and acknowledging one group commit,
	// also after shutdown began (the work is done; losing its record would
	// only cause a second delivery).
	completeTimeout = 15 * time.Second
	// recordAttempts is how often a failed RecordOutcomes is tried.
	recordAttempts = 3
)

// completer records outcomes and acknowledges entries for one kind, taking
// every completion that is ready at once (group commit), until completions
// is closed.
func (k *kindRunner) completer(completions <-chan completion) {
	for first := range completions {
		batch := []completion{first}
		n := len(first.items)
	drain:
		for n < completeMaxOutcomes {
			select {
			case c, ok := <-completions:
				if !ok {
					break drain
				}
				batch = append(batch, c)
				n += len(c.items)
			default:
				break drain
			}
		}
		k.commit(batch)
		for _, c := range batch {
			for _, ds := range c.dels {
				k.untrack(ds)
			}
			c.c.released <- c.entries
		}
	}
}

// commit records the outcomes of batch in one transaction, then acks,
// retries or schedules each row's entries as the package documentation
// describes. Rows without an outcome keep their entries pending.
func (k *kindRunner) commit(batch []completion) {
	o := k.w.o
	kind := string(k.kind)
	ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
	defer cancel()
	type ref struct {
		dels   []queue.Delivery
		domain string
	}
	var outs []store.Outcome
	var refs []ref
	for _, c := range batch {
		for _, it := range c.items {
			if !it.ok {
				continue
			}
			out := it.out
			if out.QueuedID == 0 {
				out.QueuedID = it.row.ID
			}
			if out.MessageID == 0 {
				out.MessageID = it.row.MessageID
			}
			if out.Owner == "" {
				out.Owner = it.row.LockedBy
			}
			if out.Retry && out.RetryAfter.IsZero() {
				out.RetryAfter = o.Now()
			}
			outs = append(outs, out)
			refs = append(refs, ref{dels: c.dels[it.row.ID], domain: it.row.Domain})
		}
	}
	if len(outs) == 0 {
		return
	}
	applied, err := k.record(ctx, outs)
	if err != nil {
		k.log.Error("recording outcomes failed; their entries will be reclaimed", "outcomes", len(outs), "err", err)
		return
	}
	var acks []queue.Delivery
	schedule := map[time.Time][]queue.Job{}
	for i, out := range outs {
		dels := refs[i].dels
		if !applied[i] {
			// The lock was lost: whoever holds the row now records it.
			k.w.m.skipped.WithLabelValues(kind, "refused").Inc()
			acks = append(acks, dels...)
			continue
		}
		k.w.m.processed.WithLabelValues(kind).Inc()
		if !out.Retry {
			acks = append(acks, dels...)
			continue
		}
		k.w.m.retried.WithLabelValues(kind).Inc()
		if len(dels) == 0 {
			due := out.RetryAfter.Truncate(time.Millisecond)
			schedule[due] = append(schedule[due], queue.Job{ID: out.QueuedID, Domain: refs[i].domain})
			continue
		}
		if err := o.Queue.Retry(ctx, k.kind, dels[0], out.RetryAfter); err != nil {
			k.log.Warn("move entry to retry set failed; it stays pending", "queued_id", out.QueuedID, "err", err)
		}
		acks = append(acks, dels[1:]...)
	}
	for due, jobs := range schedule {
		if err := o.Queue.Schedule(ctx, k.kind, due, jobs...); err != nil {
			k.log.Warn("schedule retries failed; reconciliation will dispatch them when due", "jobs", len(jobs), "err", err)
		}
	}
	if len(acks) > 0 {
		if err := o.Queue.Ack(ctx, k.kind, acks...); err != nil {
			k.log.Warn("ack failed; entries stay pending and will find their rows done", "entries", len(acks), "err", err)
			return
		}
		k.w.m.acked.WithLabelValues(kind).Add(float64(len(acks)))
	}
}

// record calls RecordOutcomes, retrying a failure twice with a short pause.
func (k *kindRunner) record(ctx context.Context, outs []store.Outcome) ([]bool, error) {
	var err error
	for attempt := range recordAttempts {
		if attempt > 0 {
			waitCtx(ctx, time.Duration(attempt)*250*time.Millisecond)
		}
		var applied []bool
		applied, err = k.w.o.Store.RecordOutcomes(ctx, outs)
		if err == nil {
			return applied, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}
