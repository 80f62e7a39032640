package outbound

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
)

// unloaded returns copies of rows without what their claim loaded, as
// rows built by other callers than the worker come.
func unloaded(rows ...*store.QueuedMessage) []*store.QueuedMessage {
	out := make([]*store.QueuedMessage, len(rows))
	for i, r := range rows {
		c := *r
		c.Loaded = nil
		out[i] = &c
	}
	return out
}

// TestHandleReadsWhatTheClaimDidNotLoad: rows without their claim's load
// (Loaded nil), alone or mixed with loaded rows, are read by the processor
// and get the outcomes loaded rows get: a suppressed recipient held, a row
// released by hand sent despite the suppression.
func TestHandleReadsWhatTheClaimDidNotLoad(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		name := "unloaded"
		if mixed {
			name = "mixed"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			ctx := context.Background()
			if err := e.s.AddSuppressions(ctx, []store.NewSuppression{{ServerID: e.fx.Server.ID, Address: "sup@dest.test",
				Reason: "manual", KeepUntil: e.now.Add(time.Hour)}}); err != nil {
				t.Fatal(err)
			}
			rows := e.queueMessages([]string{"ok@dest.test", "SUP@dest.test"})
			batch := unloaded(rows...)
			if mixed {
				batch[0] = rows[0]
			}
			outs := e.handle(batch...)
			if outs[0].Status() != store.StatusSent {
				t.Fatalf("plain recipient: %s %q", outs[0].Status(), outs[0].Delivery().Details)
			}
			if outs[1].Status() != store.StatusHeld || !strings.HasPrefix(strings.ToLower(outs[1].Delivery().Details), "recipient (sup@dest.test) is on the suppression list") {
				t.Fatalf("suppressed recipient: %s %q", outs[1].Status(), outs[1].Delivery().Details)
			}
			q, err := e.s.ReleaseHeld(ctx, rows[1].MessageID)
			if err != nil {
				t.Fatal(err)
			}
			out := e.handle(unloaded(e.claim([]int64{q.ID})[0])...)[0]
			if out.Status() != store.StatusSent {
				t.Fatalf("released by hand: %s %q", out.Status(), out.Delivery().Details)
			}
		})
	}
}

// TestLoadedWithoutBodyHardFails: a row whose claim found no body (removed
// by retention) hard-fails as Postal does, without a send.
func TestLoadedWithoutBodyHardFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	row := e.queueMessage("ok@dest.test")
	if row.Loaded == nil || row.Loaded.Raw == nil {
		t.Fatalf("claimed row loaded = %+v, want its body", row.Loaded)
	}
	row.Loaded.Raw = nil
	out := e.handle(row)[0]
	if out.Status() != store.StatusHardFail || out.Delivery().Details != "Raw message has been removed. Cannot send message." {
		t.Fatalf("outcome: %s %q", out.Status(), out.Delivery().Details)
	}
	if n := len(e.mail.received()); n != 0 {
		t.Fatalf("server got %d messages, want 0", n)
	}
}
