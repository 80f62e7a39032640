// Package theme is the TUI's one look and one set of keys: the styles every
// screen renders with, the key bindings the root model and the screens
// match, and the small text helpers (tables, clipping, ages) that keep every
// screen's layout the same. It holds no state; build values with Default and
// DefaultKeyMap.
package theme

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// Styles are the styles shared by every screen.
type Styles struct {
	Title lipgloss.Style
	// Tab renders an inactive tab title; ActiveTab renders the active one,
	// which the root model brackets ("[Queue]") so it shows without colour.
	Tab       lipgloss.Style
	ActiveTab lipgloss.Style
	Section   lipgloss.Style
	Header    lipgloss.Style
	OK        lipgloss.Style
	Warn      lipgloss.Style
	Bad       lipgloss.Style
	Muted     lipgloss.Style
	Footer    lipgloss.Style
}

// Default returns the default styles.
func Default() Styles {
	return Styles{
		Title:     lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("#F9F9F9")).Background(lipgloss.Color("#5A56E0")).Padding(0, 1),
		Tab:       lipgloss.NewStyle().Foreground(lipgloss.Color("245")).Padding(0, 1),
		ActiveTab: lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("#7D79F6")),
		Section:   lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("#7D79F6")),
		Header:    lipgloss.NewStyle().Bold(true),
		OK:        lipgloss.NewStyle().Foreground(lipgloss.Color("2")),
		Warn:      lipgloss.NewStyle().Foreground(lipgloss.Color("3")),
		Bad:       lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("1")),
		Muted:     lipgloss.NewStyle().Foreground(lipgloss.Color("243")),
		Footer:    lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
	}
}

// Plain returns styles without colour, for NO_COLOR: emphasis only
// (bold), so every state still reads from its words.
func Plain() Styles {
	b := lipgloss.NewStyle().Bold(true)
	n := lipgloss.NewStyle()
	return Styles{Title: b.Padding(0, 1), Tab: n.Padding(0, 1), ActiveTab: b, Section: b, Header: b, OK: n, Warn: n, Bad: b, Muted: n, Footer: n}
}

// KeyMap lists every key binding of the TUI.
type KeyMap struct {
	Quit    key.Binding
	Next    key.Binding
	Prev    key.Binding
	Refresh key.Binding
	Up      key.Binding
	Down    key.Binding
	Help    key.Binding
	// Filter opens a screen's filter line; Open opens the selected row;
	// Back closes what Open opened (or cancels a filter being typed).
	Filter key.Binding
	Open   key.Binding
	Back   key.Binding
	// NextPage and PrevPage page through a paged list; Held toggles the
	// held-messages preset.
	NextPage key.Binding
	PrevPage key.Binding
	Held     key.Binding
	// Retry, Hold, Release, Cancel and Delete act on the selected message
	// once Confirm (y) answers their question.
	Retry   key.Binding
	Hold    key.Binding
	Release key.Binding
	Cancel  key.Binding
	Delete  key.Binding
	// Unsuppress removes the suppression of the message's recipient.
	Unsuppress key.Binding
	Confirm    key.Binding
	// Screens jump straight to a screen by position (1, 2, 3...).
	Screens []key.Binding
}

// DefaultKeyMap returns the key bindings, with one direct binding for each
// of the n screens (at most 9).
func DefaultKeyMap(n int) KeyMap {
	km := KeyMap{
		Quit:    key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Next:    key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next screen")),
		Prev:    key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous")),
		Refresh: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		Up:      key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "scroll")),
		Down:    key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "scroll")),
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "all keys")),

		Filter:     key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Open:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		Back:       key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		NextPage:   key.NewBinding(key.WithKeys("n", "pgdown"), key.WithHelp("n/pgdn", "next page")),
		PrevPage:   key.NewBinding(key.WithKeys("p", "pgup"), key.WithHelp("p/pgup", "previous page")),
		Held:       key.NewBinding(key.WithKeys("H"), key.WithHelp("H", "held only")),
		Retry:      key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "retry now")),
		Hold:       key.NewBinding(key.WithKeys("h"), key.WithHelp("h", "hold")),
		Release:    key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "release")),
		Cancel:     key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "cancel (unqueue)")),
		Delete:     key.NewBinding(key.WithKeys("D"), key.WithHelp("D", "delete")),
		Unsuppress: key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "unsuppress recipient")),
		Confirm:    key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "confirm")),
	}
	for i := range min(n, 9) {
		k := fmt.Sprint(i + 1)
		km.Screens = append(km.Screens, key.NewBinding(key.WithKeys(k), key.WithHelp(k, "screen "+k)))
	}
	return km
}

// ShortHelp is the footer's list of bindings.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Next, k.Up, k.Refresh, k.Help, k.Quit}
}

// FullHelp is every binding, in columns, for the `?` page.
func (k KeyMap) FullHelp() [][]key.Binding {
	jump := key.NewBinding(key.WithKeys("1"), key.WithHelp(fmt.Sprintf("1-%d", len(k.Screens)), "jump to screen"))
	return [][]key.Binding{
		{k.Next, k.Prev, jump, k.Refresh, k.Up, k.Down, k.Help, k.Quit},
		{k.Filter, k.Open, k.Back, k.NextPage, k.PrevPage, k.Held},
		{k.Retry, k.Hold, k.Release, k.Cancel, k.Delete, k.Unsuppress, k.Confirm},
	}
}

// Table aligns rows (cells separated by tabs, no trailing newline) into
// columns two spaces apart and styles the first row with header.
func Table(header lipgloss.Style, rows []string) []string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	_ = tw.Flush() // writes to a strings.Builder cannot fail
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	if len(lines) > 0 {
		lines[0] = header.Render(lines[0])
	}
	return lines
}

// Clip returns at most height lines of lines starting at offset (clamped so
// that the last page stays full), each cut to width cells with an ellipsis,
// and the offset actually used.
func Clip(lines []string, offset, width, height int) ([]string, int) {
	if height <= 0 {
		return nil, 0
	}
	offset = max(0, min(offset, len(lines)-height))
	end := min(len(lines), offset+height)
	out := make([]string, 0, end-offset)
	for _, l := range lines[offset:end] {
		if width > 0 && ansi.StringWidth(l) > width {
			l = ansi.Truncate(l, width, "…")
		}
		out = append(out, l)
	}
	return out, offset
}

// Age renders the time from then to now compactly ("45s", "12m", "3h5m",
// "2d3h"); "-" for a zero then.
func Age(now, then time.Time) string {
	if then.IsZero() {
		return "-"
	}
	return Duration(now.Sub(then))
}

// Duration renders d compactly, rounded down to the largest two units:
// "850ms", "45s", "12m3s", "3h5m", "2d3h". Negative durations read as 0s.
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		m := int(d.Minutes())
		if s := int(d.Seconds()) - 60*m; s != 0 {
			return fmt.Sprintf("%dm%ds", m, s)
		}
		return fmt.Sprintf("%dm", m)
	case d < 24*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) - 60*h; m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) - 24*days; h != 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	}
}

// Sparkline renders values as one block character each (▁ to █, scaled to
// the largest value; a blank for zero), keeping the last width values.
func Sparkline(values []int64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	var top int64
	for _, v := range values {
		top = max(top, v)
	}
	const bars = "▁▂▃▄▅▆▇█"
	levels := []rune(bars)
	var b strings.Builder
	for _, v := range values {
		switch {
		case v <= 0 || top == 0:
			b.WriteByte(' ')
		default:
			b.WriteRune(levels[min(len(levels)-1, int((v*int64(len(levels))-1)/top))])
		}
	}
	return b.String()
}
