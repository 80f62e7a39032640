package worker

import (
	"context"
	"errors"
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
	now := o.Now()
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
			if it.out.QueuedID() != it.row.ID || it.out.Owner() != it.row.LockedBy {
				// A handler bug: the entry stays pending and is reclaimed.
				k.log.Error("handler returned an outcome for another row; its entry will be reclaimed",
					"queued_id", it.row.ID, "outcome_queued_id", it.out.QueuedID())
				continue
			}
			outs = append(outs, it.out)
			refs = append(refs, ref{dels: c.dels[it.row.ID], domain: it.row.Domain})
		}
	}
	if len(outs) == 0 {
		return
	}
	beforeCommit()
	res, err := o.Store.CommitOutcomes(ctx, outs)
	if err != nil {
		k.log.Error("recording outcomes failed; their entries will be reclaimed", "outcomes", len(outs), "err", err)
		return
	}
	// New work is dispatched after the acks: SQLite may give a new row the
	// id of a row just finished, and an ack clears that id's inflight mark.
	defer k.dispatch(res)
	applied := res.Applied
	for i, reason := range res.Fallback {
		if reason != "" {
			k.w.m.fallback.WithLabelValues(kind).Inc()
			k.log.Error("outcome could not be recorded as given; recorded as failed with the reason",
				"queued_id", outs[i].QueuedID(), "message_id", outs[i].MessageID(), "status", outs[i].Status(), "err", reason)
		}
	}
	var acks []queue.Delivery
	var forget []int64
	schedule := map[time.Time][]queue.Job{}
	for i, out := range outs {
		dels := refs[i].dels
		if res.Failed[i] != nil {
			// Nothing was written: left pending, reclaimed later.
			k.log.Error("recording an outcome failed; its entry will be reclaimed", "queued_id", out.QueuedID(), "err", res.Failed[i])
			continue
		}
		if !applied[i] {
			// The lock was lost: whoever holds the row now records it.
			k.w.m.skipped.WithLabelValues(kind, "refused").Inc()
			acks = append(acks, dels...)
			continue
		}
		k.w.m.processed.WithLabelValues(kind).Inc()
		if out.Status() == store.StatusSent {
			forget = append(forget, out.QueuedID())
		}
		if !out.Retries() || res.Fallback[i] != "" {
			acks = append(acks, dels...)
			continue
		}
		k.w.m.retried.WithLabelValues(kind).Inc()
		if len(dels) == 0 {
			due := retryAt(out, now).Truncate(time.Millisecond)
			schedule[due] = append(schedule[due], queue.Job{ID: out.QueuedID(), Domain: refs[i].domain})
			continue
		}
		if err := o.Queue.Retry(ctx, k.kind, dels[0], retryAt(out, now)); err != nil {
			k.log.Warn("move entry to retry set failed; it stays pending", "queued_id", out.QueuedID(), "err", err)
		}
		acks = append(acks, dels[1:]...)
	}
	for due, jobs := range schedule {
		if err := o.Queue.Schedule(ctx, k.kind, due, jobs...); err != nil {
			k.log.Warn("schedule retries failed; reconciliation will dispatch them when due", "jobs", len(jobs), "err", err)
		}
	}
	// The acks carry the per-minute counters in the same round trip.
	if counts := minuteCounts(res.Counts); len(acks) > 0 || !counts.IsZero() {
		err := o.Queue.AckCounted(ctx, k.kind, now, counts, acks...)
		switch {
		case err == nil || errors.Is(err, queue.ErrCountOnly):
			if err != nil {
				k.log.Warn("per-minute counters not updated; the console reads SQL for minutes it cannot vouch for", "err", err)
			}
			k.w.m.acked.WithLabelValues(kind).Add(float64(len(acks)))
		default:
			k.log.Warn("ack failed; entries stay pending and will find their rows done", "entries", len(acks), "err", err)
		}
	}
	// Records of rows whose Sent outcome committed are no longer needed
	// (the rows are gone); a record of a row whose outcome was refused
	// (the lock was lost) stays for the row's new owner.
	if j := o.Journals[k.kind]; j != nil && len(forget) > 0 {
		if err := j.Forget(ctx, forget...); err != nil {
			k.log.Warn("forgetting sent-journal records failed; they expire by themselves", "records", len(forget), "err", err)
		}
	}
}

// minuteCounts turns what an outcome commit added to the SQL statistics
// into the per-minute counters: accepted counts the messages it stored
// (bounces), the others its outcomes.
func minuteCounts(c store.StatCounts) queue.Counts {
	return queue.Counts{Accepted: c.Incoming + c.Outgoing, Sent: c.Sent, SoftFail: c.SoftFail, HardFail: c.HardFail,
		Held: c.Held, Bounced: c.Bounces}
}

// retryAt is when a retried outcome's row is due: its RetryAfter, or now.
func retryAt(out store.Outcome, now time.Time) time.Time {
	if t := out.RetryAfter(); !t.IsZero() {
		return t
	}
	return now
}

// dispatch hands the work an outcome commit created (bounce messages,
// webhook requests) to the dispatcher, after the commit. Work that is not
// dispatched is found by the requeuer's reconciliation.
func (k *kindRunner) dispatch(res store.Committed) {
	if len(res.Queued) == 0 && len(res.Webhooks) == 0 {
		return
	}
	jobs := map[queue.Kind][]queue.Job{}
	for _, a := range res.Queued {
		kind, ok := queue.KindOfScope(a.Scope)
		if !ok {
			k.log.Error("new queued message with an unknown scope", "queued_id", a.QueuedID, "scope", a.Scope)
			continue
		}
		jobs[kind] = append(jobs[kind], queue.Job{ID: a.QueuedID, Domain: a.Domain})
	}
	for _, id := range res.Webhooks {
		jobs[queue.Webhooks] = append(jobs[queue.Webhooks], queue.Job{ID: id})
	}
	k.w.o.Dispatcher.Dispatch(jobs)
}
