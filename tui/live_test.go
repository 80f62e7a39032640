package tui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/tui"
	"github.com/postalgo/postal/tui/source"
)

// The operator releases a held message through the console over a real
// database and Redis: after H (held preset), enter, u and y, SQL has the
// queued row back (due, manual, message no longer held) and the outgoing
// stream holds its entry.
func TestLiveReleaseHeldThroughTheConsole(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rdb, keys := redistest.New(t)
		fx := storetest.NewFixture(t, st, "example.com", "")
		acc, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: held one\r\n\r\nx"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com", Subject: "sent one",
				Queue: true, QueueDomain: "dest.test"},
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "b@dest.test", MailFrom: "m@example.com", Subject: "held one",
				Queue: true, QueueDomain: "dest.test"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		heldID := acc[0][1].MessageID
		if err := st.HoldMessage(ctx, heldID); err != nil {
			t.Fatal(err)
		}
		stream := func() int64 {
			stats, err := queue.New(queue.Options{Client: rdb, Keys: keys}).Inspect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := stats.Stream(queue.Outgoing)
			return s.Length
		}
		before := stream()

		live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys})
		var m tea.Model = tui.New(ctx, live, tui.Options{Messages: live, Timeout: 10 * time.Second})
		for _, msg := range []tea.Msg{tea.WindowSizeMsg{Width: 120, Height: 40}, press('4'), press('H'), enter} {
			m = settle(t, m, msg)
		}
		if f := ansi.Strip(m.View().Content); !containsAll(f, "Held", "held one", "b@dest.test") {
			t.Fatalf("the held message is not open:\n%s", f)
		}
		m = settle(t, m, press('u'))
		if q, err := st.QueuedForMessage(ctx, heldID); err == nil {
			t.Fatalf("released before y: queued row %d", q.ID)
		}
		m = settle(t, m, press('y'))

		f := ansi.Strip(m.View().Content)
		if !containsAll(f, "released (queued row", "dispatched") {
			t.Fatalf("the frame does not report the release:\n%s", f)
		}
		q, err := st.QueuedForMessage(ctx, heldID)
		if err != nil {
			t.Fatalf("no queued row after the release: %v", err)
		}
		if q.RetryAfter.After(time.Now()) || q.Domain != "dest.test" {
			t.Fatalf("queued row = %+v, want due now to dest.test", q)
		}
		msg, err := st.Message(ctx, heldID)
		if err != nil || msg.Held {
			t.Fatalf("message after release: %+v, %v", msg, err)
		}
		if after := stream(); after != before+1 {
			t.Fatalf("outgoing stream length %d, want %d (one entry added)", after, before+1)
		}
	})
}

func containsAll(f string, subs ...string) bool {
	for _, s := range subs {
		if !strings.Contains(f, s) {
			return false
		}
	}
	return true
}

// Live.RequeueDead puts back the letter whose queued row exists and leaves
// the one whose row is gone.
func TestLiveRequeueDead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rdb, keys := redistest.New(t)
		fx := storetest.NewFixture(t, st, "example.com", "")
		acc, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com", Queue: true, QueueDomain: "dest.test"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		q := queue.New(queue.Options{Client: rdb, Keys: keys, MaxDeliveries: 1})
		for _, id := range []int64{acc[0][0].QueuedID, 99999} {
			if err := q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: id, Domain: "dest.test"}); err != nil {
				t.Fatal(err)
			}
			if ds, err := q.Read(ctx, queue.Outgoing, "c1", 1, 0); err != nil || len(ds) != 1 {
				t.Fatalf("read: %v %v", ds, err)
			}
			if _, dead, err := q.Claim(ctx, queue.Outgoing, "c2", 0, 10); err != nil || len(dead) != 1 {
				t.Fatalf("claim: %v %v", dead, err)
			}
		}
		live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys})
		res, err := live.RequeueDead(ctx, 100)
		if err != nil || res != (source.DeadResult{Requeued: 1, Skipped: 1}) {
			t.Fatalf("requeue = %+v, %v", res, err)
		}
		left, err := q.DeadLetters(ctx, 10)
		if err != nil || len(left) != 1 || left[0].Job.ID != 99999 {
			t.Fatalf("dead letters left = %+v, %v", left, err)
		}
		missing, err := q.Missing(ctx, queue.Outgoing, []int64{acc[0][0].QueuedID})
		if err != nil || len(missing) != 0 {
			t.Fatalf("requeued row not dispatched: %v %v", missing, err)
		}
	})
}

// The unsuppress action removes the server's suppression of the message's
// recipient and says so; a second time there is none to remove.
func TestLiveUnsuppress(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		rdb, keys := redistest.New(t)
		fx := storetest.NewFixture(t, st, "example.com", "")
		acc, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "Gone@dest.test", MailFrom: "m@example.com", Queue: true, QueueDomain: "dest.test"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddSuppressions(ctx, []store.NewSuppression{{ServerID: fx.Server.ID, Address: "gone@dest.test", Reason: "hard fail",
			KeepUntil: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys})
		id := acc[0][0].MessageID
		res, err := live.Act(ctx, source.ActUnsuppress, id)
		if err != nil || res.Unsuppressed != "gone@dest.test" {
			t.Fatalf("unsuppress = %+v, %v", res, err)
		}
		if _, err := st.ServerSuppression(ctx, fx.Server.ID, "gone@dest.test"); err == nil {
			t.Fatal("the suppression is still there")
		}
		if res, err := live.Act(ctx, source.ActUnsuppress, id); err != nil || res.Unsuppressed != "" {
			t.Fatalf("second unsuppress = %+v, %v", res, err)
		}
	})
}
