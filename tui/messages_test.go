package tui_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/tui"
	"github.com/postalgo/postal/tui/source"
)

// settle feeds msg to m and runs the commands it returns (and theirs) to
// completion, so a key's reads and actions land before the frame is taken.
// The command that follows a snapshot is the refresh timer: it is not run.
func settle(t *testing.T, m tea.Model, msg tea.Msg) tea.Model {
	t.Helper()
	queue := []tea.Msg{msg}
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 100 {
			t.Fatal("commands did not settle")
		}
		msg := queue[0]
		queue = queue[1:]
		var cmd tea.Cmd
		m, cmd = m.Update(msg)
		if _, ok := msg.(tui.SnapshotMsg); ok || cmd == nil {
			continue
		}
		queue = append(queue, run(cmd)...)
	}
	return m
}

// run executes cmd, expanding batches; quit and nil results are dropped.
func run(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	switch msg := cmd().(type) {
	case nil, tea.QuitMsg:
		return nil
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, run(c)...)
		}
		return out
	default:
		return []tea.Msg{msg}
	}
}

func typeText(s string) []tea.Msg {
	var out []tea.Msg
	for _, r := range s {
		out = append(out, press(r))
	}
	return out
}

var (
	enter = tea.KeyPressMsg{Code: tea.KeyEnter}
	esc   = tea.KeyPressMsg{Code: tea.KeyEscape}
)

// someMessages is a server's recent traffic: sent, soft-failed, one held.
func someMessages() []*store.Message {
	var out []*store.Message
	for i := range 30 {
		m := &store.Message{ID: int64(1000 + i), ServerID: 1, Token: fmt.Sprintf("tok%d", i), Scope: store.ScopeOutgoing,
			MailFrom: "billing@acme.example", RcptTo: fmt.Sprintf("user%d@dest%d.example", i, i%3), Subject: fmt.Sprintf("Invoice %d", i),
			Status: store.StatusSent, Size: 2048, Timestamp: taken.Add(-time.Duration(30-i) * time.Minute)}
		switch i % 7 {
		case 3:
			m.Status = store.StatusSoftFail
		case 5:
			m.Status, m.Held = store.StatusHeld, true
		}
		out = append(out, m)
	}
	return out
}

func messagesFake() *source.FakeMessages {
	fm := source.NewFakeMessages(someMessages()...)
	fm.SetDetail(source.Detail{Message: &store.Message{ID: 1026},
		Queued: nil,
		Deliveries: []*store.Delivery{{Status: store.StatusHeld, Details: "Recipient is on the suppression list (hard fail).",
			Timestamp: taken.Add(-3 * time.Minute)}},
		Headers: "From: billing@acme.example\nTo: user26@dest2.example\nSubject: Invoice 26\nMessage-ID: <26@acme.example>",
		WebhookAttempts: []*store.WebhookAttempt{
			{Event: "MessageHeld", URL: "https://hooks.acme.example/postal", Attempt: 2, StatusCode: 200, Result: "ok",
				CreatedAt: taken.Add(-time.Minute)},
			{Event: "MessageHeld", URL: "https://hooks.acme.example/postal", Attempt: 1, StatusCode: 502, Result: "http_error",
				CreatedAt: taken.Add(-2 * time.Minute)},
		},
		PendingWebhooks: []*store.WebhookRequest{{Event: "MessageLoaded", URL: "https://crm.acme.example/in", Attempts: 1,
			Error: "POST: 503 Service Unavailable", RetryAfter: taken.Add(time.Minute), CreatedAt: taken.Add(-30 * time.Second)}},
		Tracking: &store.MessageTracking{Parsed: true, TrackedLinks: 2, TrackedImages: 1,
			Loads: []store.LoadEntry{{IP: "192.0.2.7", UserAgent: "Mozilla/5.0 (Mail)", Timestamp: taken.Add(-20 * time.Second)}},
			Clicks: []store.ClickEntry{{URL: "https://acme.example/invoice/26", IP: "192.0.2.7", UserAgent: "Mozilla/5.0",
				Timestamp: taken.Add(-10 * time.Second)}}},
	})
	return fm
}

func TestMessagesFrames(t *testing.T) {
	base := []tea.Msg{tui.SnapshotMsg{Snapshot: healthy()}, press('4')}
	tests := []struct {
		name string
		msgs []tea.Msg
	}{
		{"messages", nil},
		{"messages_next_page", []tea.Msg{press('n')}},
		{"messages_held", []tea.Msg{press('H')}},
		{"messages_filter_typing", append([]tea.Msg{press('/')}, typeText("status:softfail to:user3@dest0.exa")...)},
		{"messages_filter_applied", append(append([]tea.Msg{press('/')}, typeText("status:softfail")...), enter)},
		{"messages_filter_bad", append(append([]tea.Msg{press('/')}, typeText("colour:red")...), enter)},
		{"messages_detail", []tea.Msg{press('H'), enter}},
		{"messages_detail_scrolled", []tea.Msg{press('H'), enter, press('j'), press('j'), press('j'), press('j'), press('j'), press('j'),
			press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j')}},
		{"messages_confirm_release", []tea.Msg{press('H'), press('u')}},
		{"messages_released", []tea.Msg{press('H'), press('u'), press('y')}},
		{"messages_confirm_declined", []tea.Msg{press('H'), press('D'), press('n')}},
		{"messages_unsuppressed", []tea.Msg{press('H'), enter, press('S'), press('y')}},
		{"messages_help", []tea.Msg{press('?')}},
	}
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 120, Height: 40}} {
		for _, tt := range tests {
			name := fmt.Sprintf("%s_%dx%d", tt.name, size.Width, size.Height)
			t.Run(name, func(t *testing.T) {
				var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: messagesFake()})
				for _, msg := range append(append([]tea.Msg{size}, base...), tt.msgs...) {
					m = settle(t, m, msg)
				}
				f := ansi.Strip(m.View().Content)
				checkSize(t, f, size.Width, size.Height)
				golden(t, name, f)
			})
		}
	}
}

// The dashboard and the queue shape at both sizes, scrolled to show what
// lies below the fold.
func TestDashboardAndShapeFrames(t *testing.T) {
	down := tea.KeyPressMsg{Code: tea.KeyPgDown}
	tests := []struct {
		name string
		msgs []tea.Msg
	}{
		{"dashboard", nil},
		{"dashboard_lower", []tea.Msg{down, down, down, down}},
		{"dashboard_page_back", []tea.Msg{down, down, down, down, tea.KeyPressMsg{Code: tea.KeyPgUp}}},
		{"shape", []tea.Msg{press('5')}},
	}
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 120, Height: 40}} {
		for _, tt := range tests {
			name := fmt.Sprintf("%s_%dx%d", tt.name, size.Width, size.Height)
			t.Run(name, func(t *testing.T) {
				var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: messagesFake()})
				for _, msg := range append([]tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}}, tt.msgs...) {
					m = settle(t, m, msg)
				}
				f := ansi.Strip(m.View().Content)
				checkSize(t, f, size.Width, size.Height)
				golden(t, name, f)
			})
		}
	}
}

// An action runs only after y, and then exactly once.
func TestMessagesActionNeedsConfirmation(t *testing.T) {
	fm := messagesFake()
	var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: fm})
	for _, msg := range []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 24}, press('4'), press('H'), press('c'), press('q')} {
		m = settle(t, m, msg)
	}
	if len(fm.Acts()) != 0 {
		t.Fatalf("acted without y: %v", fm.Acts())
	}
	// q answered the question (no), so it did not quit; the next q does.
	_, cmd := m.Update(press('q'))
	if cmd == nil {
		t.Fatal("q after the question did not quit")
	}
	for _, msg := range []tea.Msg{press('c'), press('y')} {
		m = settle(t, m, msg)
	}
	if got, want := fm.Acts(), []string{"cancel 1026"}; !slices.Equal(got, want) {
		t.Fatalf("acts = %v, want %v", got, want)
	}
}

// When Redis stops answering, the last data stays on screen with a banner
// saying since when it is stale; when it answers again the banner goes.
func TestStaleBanner(t *testing.T) {
	down := redisDown()
	down.Taken = taken.Add(10 * time.Second)
	down.Schema, down.SQLQueue = healthy().Schema, healthy().SQLQueue
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 120, Height: 40}} {
		var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: messagesFake()})
		for _, msg := range []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, tui.SnapshotMsg{Snapshot: down}} {
			m = settle(t, m, msg)
		}
		f := ansi.Strip(m.View().Content)
		checkSize(t, f, size.Width, size.Height)
		golden(t, fmt.Sprintf("stale_redis_%dx%d", size.Width, size.Height), f)
		m = settle(t, m, press('2'))
		golden(t, fmt.Sprintf("stale_redis_queue_%dx%d", size.Width, size.Height), ansi.Strip(m.View().Content))
	}
}

// A failed message read keeps the last page, marked stale.
func TestMessagesReadFailureKeepsPage(t *testing.T) {
	fm := messagesFake()
	var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: fm})
	for _, msg := range []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 24}, press('4')} {
		m = settle(t, m, msg)
	}
	fm.SetError(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))
	m = settle(t, m, press('r'))
	golden(t, "messages_sql_down_80x24", ansi.Strip(m.View().Content))
}

func TestMouseWheelScrolls(t *testing.T) {
	var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: messagesFake()})
	for _, msg := range []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 24}, press('4'),
		tea.MouseWheelMsg{Button: tea.MouseWheelDown}, tea.MouseWheelMsg{Button: tea.MouseWheelDown}, tea.MouseWheelMsg{Button: tea.MouseWheelUp}} {
		m = settle(t, m, msg)
	}
	if f := ansi.Strip(m.View().Content); !containsLine(f, "> 1028") {
		t.Fatalf("the wheel did not move the selection to the second row:\n%s", f)
	}
}

func containsLine(f, prefix string) bool {
	for _, l := range strings.Split(f, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// On the queue screen R asks, y requeues the dead letters with a row.
func TestQueueRequeueDeadFrames(t *testing.T) {
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 120, Height: 40}} {
		for _, tt := range []struct {
			name string
			msgs []tea.Msg
			acts []string
		}{
			{"queue_requeue_hint", nil, nil},
			{"queue_requeue_confirm", []tea.Msg{press('R')}, nil},
			{"queue_requeued", []tea.Msg{press('R'), press('y')}, []string{"requeue-dead 1000"}},
			{"queue_requeue_declined", []tea.Msg{press('R'), press('q')}, nil},
		} {
			name := fmt.Sprintf("%s_%dx%d", tt.name, size.Width, size.Height)
			t.Run(name, func(t *testing.T) {
				fm := messagesFake()
				fm.SetDead(source.DeadResult{Requeued: 1, Skipped: 1})
				var m tea.Model = tui.New(context.Background(), source.NewFake(healthy()), tui.Options{Messages: fm})
				for _, msg := range append([]tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, press('2')}, tt.msgs...) {
					m = settle(t, m, msg)
				}
				f := ansi.Strip(m.View().Content)
				checkSize(t, f, size.Width, size.Height)
				golden(t, name, f)
				if got := fm.Acts(); !slices.Equal(got, tt.acts) {
					t.Fatalf("acts = %v, want %v", got, tt.acts)
				}
			})
		}
	}
}
