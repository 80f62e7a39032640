// Package screen holds the TUI's screens, one model per screen: Overview
// (health, processes, leases, queue totals), Queue (per-stream stats and
// dead letters) and Cron (task records). A screen renders the latest
// snapshot it was given into exactly the size it was given, and scrolls with
// the up/down keys; it performs no I/O (the root model fetches snapshots).
package screen

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/postalgo/postal/tui/source"
	"github.com/postalgo/postal/tui/theme"
)

// base is what every screen shares: styles, keys, size, the snapshot, the
// content lines built from it and the scroll offset.
type base struct {
	styles        theme.Styles
	keys          theme.KeyMap
	width, height int
	snap          source.Snapshot
	// build turns snap into the screen's content lines (the screen's own
	// method); lines caches its result for the current snapshot.
	build  func() []string
	lines  []string
	offset int
}

// SetSize sets the area the screen renders into.
func (b *base) SetSize(width, height int) {
	b.width, b.height = width, height
	b.scroll(0)
}

// SetSnapshot gives the screen the data to render.
func (b *base) SetSnapshot(s source.Snapshot) {
	b.snap = s
	b.lines = b.build()
	b.scroll(0)
}

// Update scrolls on the up and down keys (a line) and the page keys (a
// screen); it returns no command.
func (b *base) Update(msg tea.Msg) tea.Cmd {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(k, b.keys.Up):
			b.scroll(-1)
		case key.Matches(k, b.keys.Down):
			b.scroll(1)
		case key.Matches(k, b.keys.NextPage):
			b.scroll(max(1, b.height-1))
		case key.Matches(k, b.keys.PrevPage):
			b.scroll(-max(1, b.height-1))
		}
	}
	return nil
}

// scroll moves the offset by delta, keeping the last page full.
func (b *base) scroll(delta int) {
	b.offset = max(0, min(b.offset+delta, len(b.lines)-b.height))
}

// View renders the visible part of the content, padded to the full height.
func (b *base) View() string {
	lines := b.lines
	if lines == nil {
		lines = []string{b.styles.Muted.Render("Loading…")}
	}
	out, _ := theme.Clip(lines, b.offset, b.width, b.height)
	for len(out) < b.height {
		out = append(out, "")
	}
	return strings.Join(out, "\n")
}

// health renders one side's health line.
func (b *base) health(name string, h source.Health, extra string) string {
	if !h.OK {
		stale := ""
		if !h.StaleSince.IsZero() {
			stale = " (stale data from " + h.StaleSince.Format("15:04:05") + ")"
		}
		return name + b.styles.Bad.Render("unreachable") + stale + "  " + h.Error
	}
	s := name + b.styles.OK.Render("ok")
	if extra != "" {
		s += "  " + extra
	}
	return s
}

// redisDown returns the lines to show instead of Redis data, or nil when
// Redis answered or its last good data is kept on screen (stale).
func (b *base) redisDown() []string {
	if b.snap.Redis.OK || !b.snap.Redis.StaleSince.IsZero() {
		return nil
	}
	return []string{b.styles.Muted.Render("unavailable while Redis does not answer")}
}
