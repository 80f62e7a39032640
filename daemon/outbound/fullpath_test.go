package outbound

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// TestFullPath runs the path a worker runs, on both databases: intake
// commits and dispatches, the stream entry is read, the row claimed, the
// processor delivers over SMTP, the outcome and its effects are committed
// and acked; a hard failure's bounce, committed with the outcome, goes
// through the intake's dispatcher onto the stream.
func TestFullPath(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e := newEnv(t, envOptions{store: s})
		in := intake.New(intake.Options{Store: s, Queue: e.q})
		done := make(chan error, 1)
		go func() { done <- in.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		var ids []int64
		for _, rcpt := range []string{"ok@dest.test", "perm@dest.test"} {
			acc, err := in.Submit(ctx, store.Submission{Raw: rawMessage(rcpt, "full"), Messages: []store.NewMessage{{
				ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: rcpt, MailFrom: "sender@example.com",
				DomainID: e.fx.Domain.ID, Queue: true, QueueDomain: "dest.test"}}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, acc[0].MessageID)
		}
		// Intake dispatches after answering: read until both entries came.
		var entries []queue.Delivery
		for deadline := time.Now().Add(10 * time.Second); len(entries) < 2 && time.Now().Before(deadline); {
			got, err := e.q.Read(ctx, queue.Outgoing, "w1", 10, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, got...)
		}
		if len(entries) != 2 {
			t.Fatalf("entries %v", entries)
		}
		qids := []int64{entries[0].Job.ID, entries[1].Job.ID}
		now := time.Now()
		rows, err := s.ClaimQueued(ctx, qids, "w1", now.Add(time.Second), now.Add(time.Hour))
		if err != nil || len(rows) != 2 {
			t.Fatalf("claimed %v, %v", rows, err)
		}
		outs := e.p.Handle(ctx, rows)
		res, err := s.CommitOutcomes(ctx, outs)
		if err != nil || !res.Applied[0] || !res.Applied[1] || len(res.Queued) != 1 {
			t.Fatalf("commit %+v, %v", res, err)
		}
		// The worker hands the new work to the intake's dispatcher.
		kind, _ := queue.KindOfScope(res.Queued[0].Scope)
		in.Dispatch(map[queue.Kind][]queue.Job{kind: {{ID: res.Queued[0].QueuedID, Domain: res.Queued[0].Domain}}})
		if err := e.q.Ack(ctx, queue.Outgoing, entries...); err != nil {
			t.Fatal(err)
		}
		want := map[int64]string{ids[0]: store.StatusSent, ids[1]: store.StatusHardFail}
		for id, st := range want {
			if m := e.message(id); m.Status != st {
				t.Errorf("message %d status %s, want %s", id, m.Status, st)
			}
		}
		if got := e.mail.received(); len(got) != 1 || got[0].to != "ok@dest.test" {
			t.Errorf("server got %+v", got)
		}
		// The bounce was committed and dispatched like any outgoing message.
		next, err := e.q.Read(ctx, queue.Outgoing, "w1", 10, time.Second)
		if err != nil || len(next) != 1 || next[0].Job.Domain != "example.com" {
			t.Fatalf("bounce entry %v, %v", next, err)
		}
	})
}
