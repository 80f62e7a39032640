// Package tui is `postalctl tui`: a live operator console in Bubble Tea.
// The root Model routes between screens (package screen), tracks the window
// size, handles the global keys (q and ctrl+c quit, tab and shift+tab or
// 1..9 switch screens, r refreshes now) and refreshes the snapshot from a
// source.Source every Options.Interval. Update never blocks: every read
// happens in a tea.Cmd, and a refresh that fails keeps the last snapshot on
// screen with the error in the footer.
package tui

import (
	"context"
	"os"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/postalgo/postal/tui/screen"
	"github.com/postalgo/postal/tui/source"
	"github.com/postalgo/postal/tui/theme"
)

// Screen is one page of the console.
type Screen interface {
	// Title names the screen in the tab bar.
	Title() string
	// SetSize sets the area the screen renders into.
	SetSize(width, height int)
	// SetSnapshot gives the screen the latest data.
	SetSnapshot(source.Snapshot)
	// Update handles keys the root model did not take; it must not block.
	Update(tea.Msg) tea.Cmd
	// View renders exactly the size given to SetSize.
	View() string
}

// Defaults for Options.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// Options configures the root model.
type Options struct {
	// Interval is the time between the end of one refresh and the start of
	// the next; default 2 s.
	Interval time.Duration
	// Timeout bounds one refresh; default 10 s.
	Timeout time.Duration
	// Messages backs the Messages screen (search, detail, actions); nil
	// leaves that screen saying the database is needed.
	Messages source.MessageSource
}

// capturer is a screen that, while it returns true, takes every key (a
// filter being typed, a question being answered): the root model then acts
// only on ctrl+c.
type capturer interface{ Capturing() bool }

// refresher is a screen that reads data of its own; Refresh returns the
// command that reloads it. The root model calls it when the screen is
// shown, on every refresh tick while it is shown, and on r.
type refresher interface{ Refresh() tea.Cmd }

// SnapshotMsg carries the result of one refresh.
type SnapshotMsg struct {
	Snapshot source.Snapshot
	Err      error
}

// tickMsg asks for a refresh; seq identifies the timer that sent it, so
// that a manual refresh does not start a second refresh loop.
type tickMsg struct{ seq int }

// Model is the root model.
type Model struct {
	ctx      context.Context
	src      source.Source
	o        Options
	styles   theme.Styles
	keys     theme.KeyMap
	help     help.Model
	screens  []Screen
	active   int
	width    int
	height   int
	snap     source.Snapshot
	loaded   bool
	err      error
	fetching bool
	seq      int
	showHelp bool
	// staleDB and staleRedis are when the data kept on screen for a side
	// that stopped answering was read (zero: that side's data is fresh).
	staleDB, staleRedis time.Time
}

// New returns the root model over src with the Overview, Queue and Cron
// screens. Refreshes run under ctx: when it ends they stop.
func New(ctx context.Context, src source.Source, o Options) *Model {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	st := theme.Default()
	if os.Getenv("NO_COLOR") != "" {
		st = theme.Plain()
	}
	const screens = 5
	km := theme.DefaultKeyMap(screens)
	m := &Model{ctx: ctx, src: src, o: o, styles: st, keys: km, help: help.New()}
	m.screens = []Screen{screen.NewOverview(st, km), screen.NewQueue(ctx, o.Messages, o.Timeout, st, km), screen.NewCron(st, km),
		screen.NewMessages(ctx, o.Messages, o.Timeout, st, km), screen.NewShape(st, km)}
	return m
}

// Init starts the first refresh.
func (m *Model) Init() tea.Cmd { return m.fetch() }

// show makes screen i active and returns its own reload, if it has one.
func (m *Model) show(i int) tea.Cmd {
	m.active = i
	return m.refreshActive()
}

func (m *Model) refreshActive() tea.Cmd {
	if r, ok := m.screens[m.active].(refresher); ok {
		return r.Refresh()
	}
	return nil
}

// keepStale carries the last good data of a side that stopped answering
// into snap, so that it stays on screen, and records when it was read.
func (m *Model) keepStale(snap *source.Snapshot) {
	if !m.loaded {
		return
	}
	prev := m.snap
	if !snap.Redis.OK && prev.Queue != nil {
		if m.staleRedis.IsZero() {
			m.staleRedis = prev.Taken
		}
		snap.Processes, snap.Leases, snap.Cron, snap.Queue, snap.DeadLetters = prev.Processes, prev.Leases, prev.Cron, prev.Queue, prev.DeadLetters
		snap.RetryShape = prev.RetryShape
		snap.Redis.StaleSince = m.staleRedis
	} else if snap.Redis.OK {
		m.staleRedis = time.Time{}
	}
	if !snap.Database.OK && prev.SQLQueue != nil {
		if m.staleDB.IsZero() {
			m.staleDB = prev.Taken
		}
		snap.Schema, snap.SQLQueue = prev.Schema, prev.SQLQueue
		snap.Shape, snap.WebhookFailures = prev.Shape, prev.WebhookFailures
		if snap.Throughput == nil { // the Redis counters may still have given it
			snap.Throughput, snap.ThroughputFrom = prev.Throughput, prev.ThroughputFrom
		}
		snap.Database.StaleSince = m.staleDB
	} else if snap.Database.OK {
		m.staleDB = time.Time{}
	}
}

// fetch returns the command that reads one snapshot, or nil when a read is
// already under way.
func (m *Model) fetch() tea.Cmd {
	if m.fetching {
		return nil
	}
	m.fetching = true
	ctx, src, timeout := m.ctx, m.src, m.o.Timeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := src.Snapshot(ctx)
		return SnapshotMsg{Snapshot: s, Err: err}
	}
}

// Update handles one message; it never blocks.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		for _, s := range m.screens {
			s.SetSize(msg.Width, m.bodyHeight())
		}
		return m, nil
	case SnapshotMsg:
		m.fetching = false
		m.err = msg.Err
		if msg.Err == nil {
			m.keepStale(&msg.Snapshot)
			m.snap, m.loaded = msg.Snapshot, true
			for _, s := range m.screens {
				s.SetSnapshot(msg.Snapshot)
			}
		}
		m.seq++
		seq := m.seq
		return m, tea.Tick(m.o.Interval, func(time.Time) tea.Msg { return tickMsg{seq: seq} })
	case tickMsg:
		if msg.seq != m.seq {
			return m, nil
		}
		return m, tea.Batch(m.fetch(), m.refreshActive())
	case tea.MouseWheelMsg:
		switch msg.Button {
		case tea.MouseWheelUp:
			return m, m.screens[m.active].Update(tea.KeyPressMsg{Code: tea.KeyUp})
		case tea.MouseWheelDown:
			return m, m.screens[m.active].Update(tea.KeyPressMsg{Code: tea.KeyDown})
		}
		return m, nil
	case tea.KeyPressMsg:
		if c, ok := m.screens[m.active].(capturer); ok && c.Capturing() {
			if msg.String() == "ctrl+c" {
				return m, tea.Quit
			}
			return m, m.screens[m.active].Update(msg)
		}
		if m.showHelp {
			// Any key closes the help page; q still quits.
			m.showHelp = false
			if key.Matches(msg, m.keys.Quit) {
				return m, tea.Quit
			}
			return m, nil
		}
		switch {
		case key.Matches(msg, m.keys.Quit):
			return m, tea.Quit
		case key.Matches(msg, m.keys.Help):
			m.showHelp = true
			return m, nil
		case key.Matches(msg, m.keys.Next):
			return m, m.show((m.active + 1) % len(m.screens))
		case key.Matches(msg, m.keys.Prev):
			return m, m.show((m.active + len(m.screens) - 1) % len(m.screens))
		case key.Matches(msg, m.keys.Refresh):
			return m, tea.Batch(m.fetch(), m.refreshActive())
		}
		for i, b := range m.keys.Screens {
			if key.Matches(msg, b) && i < len(m.screens) {
				return m, m.show(i)
			}
		}
		return m, m.screens[m.active].Update(msg)
	}
	// Answers of screens' own commands go to every screen: the one that
	// asked may no longer be active.
	var cmds []tea.Cmd
	for _, s := range m.screens {
		cmds = append(cmds, s.Update(msg))
	}
	return m, tea.Batch(cmds...)
}

// bodyHeight is the height left to screens: the frame takes a tab bar, a
// blank line, a blank line and a footer.
func (m *Model) bodyHeight() int { return max(0, m.height-4) }

// View renders the whole frame: tab bar, active screen, footer.
func (m *Model) View() tea.View {
	v := tea.NewView(m.frame())
	v.AltScreen = true
	v.MouseMode = tea.MouseModeCellMotion
	v.WindowTitle = "postal"
	return v
}

func (m *Model) frame() string {
	if m.width == 0 || m.height == 0 {
		return ""
	}
	tabs := []string{m.styles.Title.Render("postal")}
	for i, s := range m.screens {
		if i == m.active {
			tabs = append(tabs, m.styles.ActiveTab.Render("["+s.Title()+"]"))
			continue
		}
		tabs = append(tabs, m.styles.Tab.Render(s.Title()))
	}
	bar := lipgloss.JoinHorizontal(lipgloss.Top, tabs...)
	body := m.screens[m.active].View()
	if m.showHelp {
		h := m.help
		h.SetWidth(m.width)
		lines := append([]string{m.styles.Section.Render("Keys (any key closes)"), ""}, strings.Split(h.FullHelpView(m.keys.FullHelp()), "\n")...)
		lines, _ = theme.Clip(lines, 0, m.width, m.bodyHeight())
		for len(lines) < m.bodyHeight() {
			lines = append(lines, "")
		}
		body = strings.Join(lines, "\n")
	}

	var status string
	switch {
	case m.err != nil:
		status = m.styles.Bad.Render("refresh failed: ") + oneLine(m.err.Error())
	case m.loaded:
		status = m.styles.Footer.Render("updated " + m.snap.Taken.Format("15:04:05"))
	default:
		status = m.styles.Footer.Render("loading")
	}
	h := m.help
	h.SetWidth(max(0, m.width-lipgloss.Width(status)-3))
	footer := status + "   " + h.ShortHelpView(m.keys.ShortHelp())
	lines, _ := theme.Clip([]string{bar, m.banner()}, 0, m.width, 2)
	out := append(lines, body, "")
	foot, _ := theme.Clip([]string{footer}, 0, m.width, 1)
	return strings.Join(append(out, foot...), "\n")
}

// banner is the line under the tab bar: empty while both sides answer,
// else which side is down and since when the data shown is stale.
func (m *Model) banner() string {
	var parts []string
	for _, side := range []struct {
		name  string
		h     source.Health
		stale time.Time
	}{{"Database", m.snap.Database, m.staleDB}, {"Redis", m.snap.Redis, m.staleRedis}} {
		if !m.loaded || side.h.OK {
			continue
		}
		p := side.name + " unreachable"
		if !side.stale.IsZero() {
			p += ": data from " + side.stale.Format("15:04:05") + " (stale)"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return ""
	}
	return m.styles.Bad.Render("! " + strings.Join(parts, " · "))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
