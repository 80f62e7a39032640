package worker

import (
	"context"
	"regexp"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// consumerName is how a consumer is named: "<owner>-<kind>-<n>".
var consumerName = regexp.MustCompile(`^(.+)-(outgoing|incoming|webhooks)-[0-9]+$`)

// ownerOf returns the process that a consumer of kind belongs to, and false
// for a name this package did not make.
func ownerOf(name string, kind queue.Kind) (string, bool) {
	m := consumerName.FindStringSubmatch(name)
	if m == nil || m[2] != string(kind) {
		return "", false
	}
	return m[1], true
}

func (k *kindRunner) addOrphan(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, o := range k.orphans {
		if o == name {
			return
		}
	}
	k.orphans = append(k.orphans, name)
}

func (k *kindRunner) takeOrphan() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.orphans) == 0 {
		return ""
	}
	name := k.orphans[0]
	k.orphans = k.orphans[1:]
	return name
}

// reapLoop runs reapOnce every ReapEvery until ctx ends.
func (w *Worker) reapLoop(ctx context.Context, runners map[queue.Kind]*kindRunner) {
	t := time.NewTicker(w.o.ReapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.reapOnce(ctx, runners)
	}
}

// reapOnce finds consumers of other worker processes that hold pending
// entries, have been idle for ReapMinIdle and whose process has no live
// heartbeat. For each such process it releases the SQL locks its claims
// hold (owners "<process>-..."), dispatches the released rows that have no
// stream entry (rows it had claimed by batching), and hands its consumers
// to this process's consumers, which take their entries over (ClaimFrom).
// When the heartbeats cannot be read nothing is done.
func (w *Worker) reapOnce(ctx context.Context, runners map[queue.Kind]*kindRunner) {
	log := w.o.Log
	type orphan struct {
		kind queue.Kind
		name string
	}
	byOwner := map[string][]orphan{}
	for kind := range runners {
		cs, err := w.o.Queue.Consumers(ctx, kind)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("listing consumers failed", "queue", string(kind), "err", err)
			}
			return
		}
		for _, c := range cs {
			if c.Pending == 0 || time.Duration(c.IdleMS)*time.Millisecond < w.o.ReapMinIdle {
				continue
			}
			owner, ok := ownerOf(c.Name, kind)
			if !ok || owner == w.o.Owner {
				continue
			}
			byOwner[owner] = append(byOwner[owner], orphan{kind, c.Name})
		}
	}
	if len(byOwner) == 0 {
		return
	}
	owners := make([]string, 0, len(byOwner))
	for o := range byOwner {
		owners = append(owners, o)
	}
	alive, err := w.o.Liveness.Alive(ctx, owners)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading heartbeats failed; not taking over anyone's work", "err", err)
		}
		return
	}
	for owner, orphans := range byOwner {
		if alive[owner] {
			continue
		}
		released, err := w.o.Store.ReleaseLocksOf(ctx, owner+"-")
		if err != nil {
			log.Error("releasing a dead worker's locks failed; its work waits for the visibility timeout", "owner", owner, "err", err)
			continue
		}
		log.Warn("worker process has no heartbeat; taking over its work", "owner", owner,
			"consumers", len(orphans), "released_rows", len(released))
		w.dispatchReleased(ctx, released)
		for _, o := range orphans {
			runners[o.kind].addOrphan(o.name)
		}
	}
}

// dispatchReleased enqueues the released rows that have no inflight marker
// (those the dead process had claimed by batching: their own entries were
// acked). Rows with a marker are in a stream already, most of them pending
// with the dead consumers and about to be taken over.
func (w *Worker) dispatchReleased(ctx context.Context, rows []*store.QueuedMessage) {
	byKind := map[queue.Kind][]*store.QueuedMessage{}
	for _, r := range rows {
		if kind, ok := queue.KindOfScope(r.Scope); ok {
			byKind[kind] = append(byKind[kind], r)
		}
	}
	for kind, rs := range byKind {
		ids := make([]int64, len(rs))
		domain := make(map[int64]string, len(rs))
		for i, r := range rs {
			ids[i], domain[r.ID] = r.ID, r.Domain
		}
		missing, err := w.o.Queue.Missing(ctx, kind, ids)
		if err != nil {
			w.o.Log.Warn("checking released rows failed; reconciliation will dispatch them", "queue", string(kind), "err", err)
			continue
		}
		jobs := make([]queue.Job, len(missing))
		for i, id := range missing {
			jobs[i] = queue.Job{ID: id, Domain: domain[id]}
		}
		if err := w.o.Queue.Enqueue(ctx, kind, jobs...); err != nil {
			w.o.Log.Warn("dispatching released rows failed; reconciliation will dispatch them", "queue", string(kind), "err", err)
		}
	}
}
