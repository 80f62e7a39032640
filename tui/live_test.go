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
