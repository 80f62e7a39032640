package screen

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/tui/source"
	"github.com/postalgo/postal/tui/theme"
)

// Messages searches messages (the filter line, the held preset, keyset
// pages), opens one (envelope, headers, queued row, deliveries) and acts on
// it after a y confirmation: retry now, hold, release, cancel, delete. Every
// read and action is a tea.Cmd on the MessageSource; a result whose request
// was superseded is dropped. When a read fails the last page stays on screen
// marked stale.
type Messages struct {
	styles        theme.Styles
	keys          theme.KeyMap
	width, height int
	ctx           context.Context
	src           source.MessageSource
	timeout       time.Duration
	now           time.Time

	query   string
	filter  store.MessageFilter
	editing bool
	input   string
	// prev holds the Before cursor of each earlier page.
	prev []int64

	page    store.MessagePage
	loaded  bool
	listErr string
	sel     int
	seq     int

	detail    *source.Detail
	detailErr string
	open      int64
	offset    int

	confirm   source.Action
	confirmID int64
	note      string
	noteBad   bool
}

// Messages the screen's commands answer with.
type (
	pageMsg struct {
		seq  int
		page store.MessagePage
		err  error
	}
	detailMsg struct {
		id  int64
		d   source.Detail
		err error
	}
	actionMsg struct {
		res source.Result
		err error
	}
)

// NewMessages returns the messages screen over src (nil: the screen says the
// database is needed). Reads run under ctx, each bounded by timeout.
func NewMessages(ctx context.Context, src source.MessageSource, timeout time.Duration, st theme.Styles, km theme.KeyMap) *Messages {
	return &Messages{ctx: ctx, src: src, timeout: timeout, styles: st, keys: km}
}

// Title names the screen in the tab bar.
func (*Messages) Title() string { return "Messages" }

// SetSize sets the area the screen renders into.
func (s *Messages) SetSize(width, height int) { s.width, s.height = width, height }

// SetSnapshot takes the snapshot's time as "now" for relative filters.
func (s *Messages) SetSnapshot(snap source.Snapshot) { s.now = snap.Taken }

// Capturing reports whether the screen takes every key (typing a filter or
// answering a confirmation), so the root model must not act on them.
func (s *Messages) Capturing() bool { return s.editing || s.confirm != "" }

// Refresh reloads the current page (and the open message).
func (s *Messages) Refresh() tea.Cmd {
	cmds := []tea.Cmd{s.load()}
	if s.detail != nil || s.open != 0 {
		cmds = append(cmds, s.loadDetail(s.open))
	}
	return tea.Batch(cmds...)
}

func (s *Messages) load() tea.Cmd {
	if s.src == nil {
		return nil
	}
	s.seq++
	seq, f, src, ctx, timeout := s.seq, s.filter, s.src, s.ctx, s.timeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		p, err := src.SearchMessages(ctx, f)
		return pageMsg{seq: seq, page: p, err: err}
	}
}

func (s *Messages) loadDetail(id int64) tea.Cmd {
	if s.src == nil || id == 0 {
		return nil
	}
	src, ctx, timeout := s.src, s.ctx, s.timeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		d, err := src.MessageDetail(ctx, id)
		return detailMsg{id: id, d: d, err: err}
	}
}

func (s *Messages) act(a source.Action, id int64) tea.Cmd {
	src, ctx, timeout := s.src, s.ctx, s.timeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := src.Act(ctx, a, id)
		return actionMsg{res: res, err: err}
	}
}

// selected is the message the actions apply to: the open one, else the
// selected row.
func (s *Messages) selected() *store.Message {
	if s.open != 0 {
		if s.detail != nil {
			return s.detail.Message
		}
		return nil
	}
	if s.sel < len(s.page.Messages) {
		return s.page.Messages[s.sel]
	}
	return nil
}

// Update handles keys and the answers of the screen's commands.
func (s *Messages) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case pageMsg:
		if msg.seq != s.seq {
			return nil
		}
		if msg.err != nil {
			s.listErr = oneLine(msg.err.Error())
			return nil
		}
		keep := int64(0)
		if m := s.selected(); m != nil && s.open == 0 {
			keep = m.ID
		}
		s.page, s.loaded, s.listErr = msg.page, true, ""
		s.sel = 0
		for i, m := range s.page.Messages {
			if m.ID == keep {
				s.sel = i
			}
		}
		return nil
	case detailMsg:
		if msg.id != s.open {
			return nil
		}
		if msg.err != nil {
			s.detailErr = oneLine(msg.err.Error())
			return nil
		}
		d := msg.d
		s.detail, s.detailErr = &d, ""
		return nil
	case actionMsg:
		if msg.err != nil {
			s.note, s.noteBad = "failed: "+oneLine(msg.err.Error()), true
			return nil
		}
		s.note, s.noteBad = describe(msg.res), false
		if msg.res.Action == source.ActDelete && s.open == msg.res.MessageID {
			s.open, s.detail = 0, nil
			return s.load()
		}
		return s.Refresh()
	case tea.KeyPressMsg:
		return s.key(msg)
	}
	return nil
}

// describe renders an action's result in one line.
func describe(r source.Result) string {
	var past string
	switch r.Action {
	case source.ActRetry:
		past = "made due now"
	case source.ActHold:
		past = "held"
	case source.ActRelease:
		past = "released"
	case source.ActCancel:
		past = "removed from the queue"
	case source.ActDelete:
		past = "deleted"
	case source.ActUnsuppress:
		if r.Unsuppressed == "" {
			return fmt.Sprintf("Message %d: its recipient was not suppressed.", r.MessageID)
		}
		return fmt.Sprintf("Removed the suppression of %s (message %d unchanged: release or retry it).", cell(r.Unsuppressed, 80), r.MessageID)
	}
	out := fmt.Sprintf("Message %d %s", r.MessageID, past)
	if r.QueuedID != 0 {
		if r.Dispatched {
			out += fmt.Sprintf(" (queued row %d, dispatched)", r.QueuedID)
		} else {
			out += fmt.Sprintf(" (queued row %d due; not dispatched: %s)", r.QueuedID, oneLine(r.DispatchError))
		}
	}
	return out + "."
}

func (s *Messages) key(k tea.KeyPressMsg) tea.Cmd {
	km := s.keys
	if s.confirm != "" {
		a, id := s.confirm, s.confirmID
		s.confirm, s.confirmID = "", 0
		if key.Matches(k, km.Confirm) {
			s.note, s.noteBad = fmt.Sprintf("%s message %d…", a, id), false
			return s.act(a, id)
		}
		s.note, s.noteBad = "Cancelled: nothing changed.", false
		return nil
	}
	if s.editing {
		switch k.Code {
		case tea.KeyEnter:
			f, err := ParseQuery(s.input, s.now)
			if err != nil {
				s.note, s.noteBad = "filter: "+err.Error(), true
				return nil
			}
			s.editing, s.query, s.filter, s.prev, s.note = false, strings.TrimSpace(s.input), f, nil, ""
			return s.load()
		case tea.KeyEscape:
			s.editing, s.note = false, ""
		case tea.KeyBackspace:
			if r := []rune(s.input); len(r) > 0 {
				s.input = string(r[:len(r)-1])
			}
		default:
			if k.Text != "" && len(s.input)+len(k.Text) <= MaxQuery {
				s.input += k.Text
			}
		}
		return nil
	}
	if s.src == nil {
		return nil
	}
	for _, a := range []struct {
		b key.Binding
		a source.Action
	}{{km.Retry, source.ActRetry}, {km.Hold, source.ActHold}, {km.Release, source.ActRelease}, {km.Cancel, source.ActCancel}, {km.Delete, source.ActDelete},
		{km.Unsuppress, source.ActUnsuppress}} {
		if key.Matches(k, a.b) {
			m := s.selected()
			if m == nil {
				return nil
			}
			s.confirm, s.confirmID = a.a, m.ID
			return nil
		}
	}
	if s.open != 0 {
		switch {
		case key.Matches(k, km.Back):
			s.open, s.detail, s.detailErr, s.offset = 0, nil, "", 0
		case key.Matches(k, km.Up):
			s.offset = max(0, s.offset-1)
		case key.Matches(k, km.Down):
			s.offset++
		}
		return nil
	}
	switch {
	case key.Matches(k, km.Up):
		s.sel = max(0, s.sel-1)
	case key.Matches(k, km.Down):
		s.sel = max(0, min(s.sel+1, len(s.page.Messages)-1))
	case key.Matches(k, km.Filter):
		s.editing, s.input, s.note = true, s.query, ""
	case key.Matches(k, km.Held):
		s.filter.Held = !s.filter.Held
		s.filter.Before, s.prev = 0, nil
		return s.load()
	case key.Matches(k, km.NextPage):
		if s.page.Next != 0 {
			s.prev = append(s.prev, s.filter.Before)
			s.filter.Before = s.page.Next
			return s.load()
		}
	case key.Matches(k, km.PrevPage):
		if n := len(s.prev); n > 0 {
			s.filter.Before, s.prev = s.prev[n-1], s.prev[:n-1]
			return s.load()
		}
	case key.Matches(k, km.Open):
		if m := s.selected(); m != nil {
			s.open, s.detail, s.detailErr, s.offset = m.ID, nil, "", 0
			return s.loadDetail(m.ID)
		}
	case key.Matches(k, km.Back):
		if s.query != "" || s.filter.Held {
			s.query, s.filter, s.prev = "", store.MessageFilter{}, nil
			return s.load()
		}
	}
	return nil
}

// View renders the screen into exactly its size.
func (s *Messages) View() string {
	st := s.styles
	var head []string
	switch {
	case s.editing:
		head = append(head, "Filter: "+s.input+"█")
	default:
		q := s.query
		if s.filter.Held {
			q = strings.TrimSpace("held " + q)
		}
		if q == "" {
			q = st.Muted.Render("none (/ to filter, H for held)")
		}
		pg := fmt.Sprintf("page %d", len(s.prev)+1)
		head = append(head, "Filter: "+q+"  "+st.Muted.Render(pg))
	}
	switch {
	case s.confirm != "":
		head = append(head, st.Warn.Render(fmt.Sprintf("%s message %d? y to confirm, any other key cancels", confirmVerb(s.confirm), s.confirmID)))
	case s.note != "" && s.noteBad:
		head = append(head, st.Bad.Render(s.note))
	case s.note != "":
		head = append(head, st.OK.Render(s.note))
	case s.listErr != "":
		head = append(head, st.Bad.Render("stale: ")+s.listErr)
	default:
		head = append(head, st.Muted.Render("enter open · R retry · h hold · u release · c cancel · D delete"))
	}
	var body []string
	offset := 0
	switch {
	case s.src == nil:
		body = []string{st.Muted.Render("Message search needs the database, which is not open.")}
	case s.open != 0:
		body, offset = s.detailLines(), s.offset
	case !s.loaded && s.listErr == "":
		body = []string{st.Muted.Render("Loading…")}
	default:
		body, offset = s.listLines()
	}
	h := max(0, s.height-len(head))
	lines, used := theme.Clip(body, offset, s.width, h)
	if s.open != 0 {
		s.offset = used
	}
	out, _ := theme.Clip(head, 0, s.width, len(head))
	out = append(out, lines...)
	for len(out) < s.height {
		out = append(out, "")
	}
	return strings.Join(out[:s.height], "\n")
}

func confirmVerb(a source.Action) string {
	switch a {
	case source.ActRetry:
		return "Retry now"
	case source.ActHold:
		return "Hold"
	case source.ActRelease:
		return "Release"
	case source.ActCancel:
		return "Remove from the queue (cancel)"
	case source.ActUnsuppress:
		return "Remove the recipient's suppression for"
	default:
		return "Delete for good"
	}
}

// listLines renders the page with the selected row marked, and the offset
// that keeps the selection visible.
func (s *Messages) listLines() ([]string, int) {
	st := s.styles
	if len(s.page.Messages) == 0 {
		return []string{st.Muted.Render("No messages match.")}, 0
	}
	rows := []string{"  ID\tRECEIVED\tSTATUS\tFROM\tTO\tSUBJECT"}
	// ID, time and status take about 40 cells; from and to share the rest
	// with the subject.
	addr := max(12, min(40, (s.width-40)/3))
	for i, m := range s.page.Messages {
		mark := "  "
		if i == s.sel {
			mark = "> "
		}
		status := m.Status
		if m.Held && status != store.StatusHeld {
			status += "+held"
		}
		rows = append(rows, fmt.Sprintf("%s%d\t%s\t%s\t%s\t%s\t%s", mark, m.ID, m.Timestamp.UTC().Format("01-02 15:04"), status,
			cell(m.MailFrom, addr), cell(m.RcptTo, addr), cell(m.Subject, 200)))
	}
	lines := theme.Table(st.Header, rows)
	if s.page.Next != 0 {
		lines = append(lines, st.Muted.Render("more: n for the next page"))
	}
	h := max(1, s.height-2)
	offset := 0
	if s.sel+1 >= h {
		offset = s.sel + 2 - h
	}
	return lines, offset
}

// cell makes foreign text fit one table cell: no tabs or control
// characters, at most n runes.
func cell(v string, n int) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v)
	if r := []rune(v); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if v == "" {
		return "-"
	}
	return v
}

func (s *Messages) detailLines() []string {
	st := s.styles
	if s.detail == nil {
		if s.detailErr != "" {
			return []string{st.Bad.Render("cannot read message: ") + s.detailErr}
		}
		return []string{st.Muted.Render("Loading…")}
	}
	d := s.detail
	m := d.Message
	status := m.Status
	if m.Held && status != store.StatusHeld {
		status += ", held"
		if !m.HoldExpiry.IsZero() {
			status += " until " + m.HoldExpiry.UTC().Format(time.DateTime)
		}
	}
	rows := []string{
		fmt.Sprintf("Message\t%d (token %s)", m.ID, cell(m.Token, 40)),
		"Status\t" + status,
		"Scope\t" + m.Scope,
		"From\t" + cell(m.MailFrom, 200),
		"To\t" + cell(m.RcptTo, 200),
		"Subject\t" + cell(m.Subject, 200),
		fmt.Sprintf("Size\t%d bytes", m.Size),
		"Received\t" + m.Timestamp.UTC().Format(time.DateTime),
	}
	if m.Tag != "" {
		rows = append(rows, "Tag\t"+cell(m.Tag, 200))
	}
	if m.Details != "" {
		rows = append(rows, "Details\t"+cell(m.Details, 200))
	}
	if q := d.Queued; q != nil {
		lock := ""
		if q.LockedBy != "" {
			lock = ", locked by " + q.LockedBy
		}
		rows = append(rows, fmt.Sprintf("Queued\trow %d to %s, attempts %d, due %s%s", q.ID, cell(q.Domain, 60), q.Attempts,
			q.RetryAfter.UTC().Format(time.DateTime), lock))
	} else {
		rows = append(rows, "Queued\tno")
	}
	lines := []string{st.Section.Render("Envelope")}
	lines = append(lines, theme.Table(st.Muted, rows)...)
	lines = append(lines, "", st.Section.Render(fmt.Sprintf("Deliveries (%d)", len(d.Deliveries))))
	if len(d.Deliveries) == 0 {
		lines = append(lines, st.Muted.Render("none yet"))
	} else {
		rows := []string{"TIME\tSTATUS\tDETAILS"}
		for _, dl := range d.Deliveries {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s", dl.Timestamp.UTC().Format(time.DateTime), dl.Status, cell(dl.Details, 120)))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	lines = append(lines, "", st.Section.Render(fmt.Sprintf("Webhook requests (%d attempts, %d pending)", len(d.WebhookAttempts),
		len(d.PendingWebhooks))))
	if len(d.WebhookAttempts) == 0 && len(d.PendingWebhooks) == 0 {
		lines = append(lines, st.Muted.Render("none"))
	} else {
		rows := []string{"TIME	EVENT	ATTEMPT	RESULT	URL"}
		for _, r := range d.PendingWebhooks {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\tpending, due %s\t%s", r.CreatedAt.UTC().Format(time.DateTime), r.Event,
				r.Attempts+1, r.RetryAfter.UTC().Format(time.TimeOnly), cell(r.URL, 60)))
		}
		for _, a := range d.WebhookAttempts {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s %d\t%s", a.CreatedAt.UTC().Format(time.DateTime), a.Event, a.Attempt,
				a.Result, a.StatusCode, cell(a.URL, 60)))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	lines = append(lines, "", st.Section.Render("Opens and clicks"))
	switch tr := d.Tracking; {
	case tr == nil || (!tr.Parsed && len(tr.Loads) == 0 && len(tr.Clicks) == 0):
		lines = append(lines, st.Muted.Render("not tracked"))
	default:
		lines = append(lines, fmt.Sprintf("%d links and %d images tracked · %d loads · %d clicks", tr.TrackedLinks, tr.TrackedImages,
			len(tr.Loads), len(tr.Clicks)))
		if len(tr.Loads)+len(tr.Clicks) > 0 {
			rows := []string{"TIME	EVENT	IP	DETAIL"}
			for _, l := range tr.Loads {
				rows = append(rows, fmt.Sprintf("%s	load	%s	%s", l.Timestamp.UTC().Format(time.DateTime), cell(l.IP, 45), cell(l.UserAgent, 80)))
			}
			for _, c := range tr.Clicks {
				rows = append(rows, fmt.Sprintf("%s	click	%s	%s", c.Timestamp.UTC().Format(time.DateTime), cell(c.IP, 45), cell(c.URL, 80)))
			}
			lines = append(lines, theme.Table(st.Header, rows)...)
		}
	}
	lines = append(lines, "", st.Section.Render("Headers"))
	if d.Headers == "" {
		lines = append(lines, st.Muted.Render("body removed by retention"))
	} else {
		for _, h := range strings.Split(d.Headers, "\n") {
			lines = append(lines, cell(strings.TrimRight(h, "\r"), 300))
		}
	}
	return lines
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
