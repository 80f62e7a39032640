package tui_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/tui"
	"github.com/postalgo/postal/tui/source"
)

var update = flag.Bool("update", false, "rewrite the golden frames in testdata/")

var (
	taken   = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	tab     = tea.KeyPressMsg{Code: tea.KeyTab}
	backTab = tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
)

func press(r rune) tea.KeyPressMsg { return tea.KeyPressMsg{Code: r, Text: string(r)} }

// healthy is a busy installation: two processes, both leases held, a
// failing cron task, entries in every part of the queue, two dead letters.
func healthy() source.Snapshot {
	next := taken.Add(45 * time.Second)
	return source.Snapshot{
		Taken:    taken,
		Database: source.Health{OK: true},
		Redis:    source.Health{OK: true},
		Schema:   &store.SchemaStatus{Current: 3, Latest: 3},
		SQLQueue: &store.QueueCounts{Total: 42, Due: 7, Locked: 3},
		Processes: []status.Process{
			{ID: "mx1:4021", Host: "mx1", PID: 4021, Roles: []string{"smtp-server", "worker"}, Version: "1.4.0",
				Started: taken.Add(-26*time.Hour - 5*time.Minute), Seen: taken.Add(-2 * time.Second)},
			{ID: "ops:77", Host: "ops", PID: 77, Roles: []string{"cron", "requeuer"}, Version: "1.4.0",
				Started: taken.Add(-3 * time.Minute), Seen: taken.Add(-1 * time.Second)},
		},
		Leases: []source.Lease{
			{Name: "cron", Owner: "ops:77:9f3a1c2b", Token: 1741944000123, TTL: 12 * time.Second},
			{Name: "requeuer", Owner: "ops:77:9f3a1c2b", Token: 1741944000124, TTL: 9500 * time.Millisecond},
		},
		Cron: []status.TaskRuns{
			{Task: "check_dns", Last: status.CronRun{Task: "check_dns", Started: taken.Add(-10 * time.Minute), Duration: 1200 * time.Millisecond,
				OK: false, Error: "lookup example.com: i/o timeout", Token: 1741944000123}, Recent: make([]status.CronRun, 20)},
			{Task: "prune_suppressions", Last: status.CronRun{Task: "prune_suppressions", Started: taken.Add(-90 * time.Second),
				Duration: 35 * time.Millisecond, OK: true, Token: 1741944000123}, Recent: make([]status.CronRun, 3)},
		},
		Queue: &queue.Stats{
			Streams: []queue.StreamStats{
				{Kind: queue.Outgoing, Length: 9, Pending: 4, Lag: 5, GroupExists: true, Consumers: make([]queue.ConsumerStats, 8)},
				{Kind: queue.Incoming, Length: 1, Pending: 1, Lag: 0, GroupExists: true, Consumers: make([]queue.ConsumerStats, 8)},
				{Kind: queue.Webhooks, GroupExists: false},
			},
			Retry:    queue.RetryStats{Size: 6, NextDue: &next},
			Dead:     2,
			Inflight: 16,
		},
		DeadLetters: []queue.DeadLetter{
			{Kind: queue.Outgoing, Job: queue.Job{ID: 812, Domain: "example.net"}, Count: 10, Reason: "delivered 10 times (max 10)", Time: taken.Add(-4 * time.Minute)},
			{Kind: queue.Webhooks, Job: queue.Job{ID: 31}, Count: 10, Reason: "delivered 10 times (max 10)", Time: taken.Add(-2 * time.Hour)},
		},
		RetryShape: []queue.RetryBucket{{Due: taken, Count: 1}, {Due: taken.Add(time.Minute), Count: 2}, {Due: taken.Add(5 * time.Minute), Count: 0},
			{Due: taken.Add(15 * time.Minute), Count: 3}, {Due: taken.Add(time.Hour)}, {Due: taken.Add(6 * time.Hour)}, {Count: 0}},
		Throughput: series(), ThroughputFrom: source.ThroughputRedis,
		Shape: &store.QueueShape{Buckets: store.ShapeBuckets(),
			Total: store.ShapeRow{Domain: "TOTAL", Total: 42, Counts: []int64{30, 5, 3, 2, 1, 1, 0, 0, 0, 0}},
			Domains: []store.ShapeRow{
				{Scope: "outgoing", Domain: "gmail.example", Total: 25, Counts: []int64{20, 3, 1, 1, 0, 0, 0, 0, 0, 0}},
				{Scope: "outgoing", Domain: "slow.example", Total: 12, Counts: []int64{6, 2, 2, 1, 1, 0, 0, 0, 0, 0}},
				{Scope: "incoming", Domain: "", Total: 5, Counts: []int64{4, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
			}},
		WebhookFailures: []*store.WebhookRequest{{ID: 9, Event: "MessageSent", URL: "https://hooks.acme.example/postal",
			Attempts: 3, Error: "POST: 502 Bad Gateway", CreatedAt: taken.Add(-7 * time.Minute)}},
	}
}

// series is an hour of traffic with a spike and some failures.
func series() *store.Series {
	sr := &store.Series{Start: taken.Add(-59 * time.Minute).Truncate(time.Minute), Step: time.Minute}
	for i := range 60 {
		sr.Accepted = append(sr.Accepted, int64(20+i%7*3))
		sr.Sent = append(sr.Sent, int64(18+i%7*3))
		sr.SoftFail = append(sr.SoftFail, int64(i%5/4))
		sr.HardFail = append(sr.HardFail, int64(i%13/12))
		held := int64(0)
		if i > 40 && i < 45 {
			held = int64(10 * (i - 40))
		}
		sr.Held = append(sr.Held, held)
		sr.Bounced = append(sr.Bounced, 0)
	}
	return sr
}

// redisDown is what the live source returns when Redis does not answer.
func redisDown() source.Snapshot {
	return source.Snapshot{
		Taken:    taken,
		Database: source.Health{OK: true},
		Redis:    source.Health{Error: "dial tcp 127.0.0.1:6379: connect: connection refused"},
		Schema:   &store.SchemaStatus{Current: 2, Latest: 3},
		SQLQueue: &store.QueueCounts{Total: 5, Due: 5},
	}
}

// frame sends msgs to m and returns its view without colours.
func frame(t *testing.T, m tea.Model, msgs ...tea.Msg) (tea.Model, string) {
	t.Helper()
	for _, msg := range msgs {
		m, _ = m.Update(msg)
	}
	return m, ansi.Strip(m.View().Content)
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("frame differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// checkSize fails unless the frame is exactly w cells by h lines.
func checkSize(t *testing.T, f string, w, h int) {
	t.Helper()
	lines := strings.Split(f, "\n")
	if len(lines) != h {
		t.Fatalf("frame has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Fatalf("line %d is %d cells wide, want at most %d: %q", i+1, n, w, l)
		}
	}
}

func TestFramesAt80x24(t *testing.T) {
	size := tea.WindowSizeMsg{Width: 80, Height: 24}
	tests := []struct {
		name string
		msgs []tea.Msg
	}{
		{"loading", []tea.Msg{size}},
		{"overview", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}}},
		{"queue", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, tab}},
		{"cron", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, tab, tab}},
		{"cron", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, backTab, backTab, backTab}},
		{"cron", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, press('3')}},
		{"overview", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, tab, tab, tab, tab, tab}},
		{"overview_redis_down", []tea.Msg{size, tui.SnapshotMsg{Snapshot: redisDown()}}},
		{"queue_redis_down", []tea.Msg{size, tui.SnapshotMsg{Snapshot: redisDown()}, press('2')}},
		{"cron_redis_down", []tea.Msg{size, tui.SnapshotMsg{Snapshot: redisDown()}, press('3')}},
		// A failed refresh keeps the last snapshot and says why in the footer.
		{"refresh_failed", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()},
			tui.SnapshotMsg{Err: errors.New("snapshot: context deadline exceeded")}}},
		// In a short window, scrolling shows the lines below the fold;
		// scrolling past the end keeps the last page, and one step up
		// from there moves up one line.
		{"overview_scrolled", []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 14}, tui.SnapshotMsg{Snapshot: healthy()},
			press('j'), press('j'), press('j'), tea.KeyPressMsg{Code: tea.KeyDown}}},
		{"overview_scrolled_end", []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 14}, tui.SnapshotMsg{Snapshot: healthy()},
			press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'),
			press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('j'), press('k')}},
		// A resize re-lays every screen out.
		{"overview_narrow", []tea.Msg{size, tui.SnapshotMsg{Snapshot: healthy()}, tea.WindowSizeMsg{Width: 50, Height: 12}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tui.New(context.Background(), source.NewFake(source.Snapshot{}), tui.Options{})
			_, f := frame(t, m, tt.msgs...)
			w, h := 80, 24
			for _, msg := range tt.msgs {
				if ws, ok := msg.(tea.WindowSizeMsg); ok {
					w, h = ws.Width, ws.Height
				}
			}
			checkSize(t, f, w, h)
			golden(t, tt.name, f)
		})
	}
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []tea.KeyPressMsg{press('q'), {Code: 'c', Mod: tea.ModCtrl}} {
		t.Run(k.String(), func(t *testing.T) {
			m := tui.New(context.Background(), source.NewFake(healthy()), tui.Options{})
			_, cmd := m.Update(k)
			if cmd == nil {
				t.Fatal("no command")
			}
			if _, ok := cmd().(tea.QuitMsg); !ok {
				t.Fatalf("%s did not quit", k)
			}
		})
	}
}

// The refresh loop: Init reads a snapshot in a command; its result
// schedules a tick; the tick reads again. A manual refresh while a read is
// under way starts no second read, and a tick from a superseded timer is
// ignored, so there is only ever one refresh loop.
func TestRefreshLoop(t *testing.T) {
	fake := source.NewFake(healthy())
	m := tui.New(context.Background(), fake, tui.Options{Interval: time.Millisecond})
	cmd := m.Init()
	if cmd == nil || fake.Calls() != 0 {
		t.Fatalf("Init: cmd %v, calls %d; want a command and no read yet (Update and Init never block on I/O)", cmd, fake.Calls())
	}
	if _, again := m.Update(press('r')); again != nil {
		t.Fatal("manual refresh while a read is under way started another read")
	}
	msg := cmd()
	if _, ok := msg.(tui.SnapshotMsg); !ok || fake.Calls() != 1 {
		t.Fatalf("first read = %T, calls %d", msg, fake.Calls())
	}
	_, tick := m.Update(msg)
	if tick == nil {
		t.Fatal("a snapshot scheduled no next refresh")
	}
	tickMsg := tick()
	// A manual refresh now supersedes the pending timer.
	_, manual := m.Update(press('r'))
	if manual == nil {
		t.Fatal("manual refresh did nothing")
	}
	_, next := m.Update(manual())
	if fake.Calls() != 2 || next == nil {
		t.Fatalf("after the manual refresh: calls %d, next %v", fake.Calls(), next)
	}
	if _, stale := m.Update(tickMsg); stale != nil {
		t.Fatal("a tick from the superseded timer started a read")
	}
	if _, read := m.Update(next()); read == nil {
		t.Fatal("the current timer's tick did not start a read")
	}
}

// A refresh that fails is shown and retried on the next tick.
func TestRefreshErrorIsRetried(t *testing.T) {
	fake := source.NewFake(source.Snapshot{})
	fake.Set(source.Snapshot{}, errors.New("boom"))
	m := tui.New(context.Background(), fake, tui.Options{Interval: time.Millisecond})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	_, tick := m.Update(m.Init()())
	if f := ansi.Strip(m.View().Content); !strings.Contains(f, "refresh failed: boom") {
		t.Fatalf("frame does not show the error:\n%s", f)
	}
	fake.Set(healthy(), nil)
	_, read := m.Update(tick())
	m.Update(read())
	if f := ansi.Strip(m.View().Content); !strings.Contains(f, "updated 09:26:53") || !strings.Contains(f, "mx1:4021") {
		t.Fatalf("frame after a good refresh:\n%s", f)
	}
}
