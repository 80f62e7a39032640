package worker

import (
	"context"

	"github.com/postalgo/postal/daemon/queue"
)

// ReapOnceForTest runs one takeover check (reapOnce) and returns, per
// stream, the consumers of dead processes it handed to this worker.
func (w *Worker) ReapOnceForTest(ctx context.Context) map[queue.Kind][]string {
	runners := map[queue.Kind]*kindRunner{}
	for kind, h := range w.o.Handlers {
		runners[kind] = &kindRunner{w: w, kind: kind, h: h, log: w.o.Log, busy: map[string]struct{}{}}
	}
	w.reapOnce(ctx, runners)
	out := map[queue.Kind][]string{}
	for kind, k := range runners {
		if len(k.orphans) > 0 {
			out[kind] = k.orphans
		}
	}
	return out
}
