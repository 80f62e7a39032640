package screen

import (
	"context"
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/postalgo/postal/tui/source"

	"github.com/postalgo/postal/tui/theme"
)

// Queue shows each stream (length, pending, lag, consumers, whether its
// group exists), the retry set, the inflight hash, the SQL counts beside
// them, and the most recent dead letters. R, confirmed with y, requeues the
// dead letters whose SQL row still exists (through src).
type Queue struct {
	base
	ctx     context.Context
	src     source.MessageSource
	timeout time.Duration
	confirm bool
	note    string
	noteBad bool
}

// deadMsg answers a requeue of dead letters.
type deadMsg struct {
	res source.DeadResult
	err error
}

// requeueLimit is how many dead letters one requeue considers.
const requeueLimit = 1000

// NewQueue returns the queue screen; src may be nil (no requeue).
func NewQueue(ctx context.Context, src source.MessageSource, timeout time.Duration, st theme.Styles, km theme.KeyMap) *Queue {
	s := &Queue{base: base{styles: st, keys: km}, ctx: ctx, src: src, timeout: timeout}
	s.build = s.content
	return s
}

// Capturing reports whether the screen waits for the answer to its question.
func (q *Queue) Capturing() bool { return q.confirm }

// Update asks before requeueing dead letters, runs the requeue on y, and
// otherwise scrolls.
func (q *Queue) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case deadMsg:
		if msg.err != nil {
			q.note, q.noteBad = "requeue failed: "+oneLine(msg.err.Error()), true
			return nil
		}
		q.note, q.noteBad = fmt.Sprintf("Requeued %d dead letters; left %d whose row is gone.", msg.res.Requeued, msg.res.Skipped), false
		return nil
	case tea.KeyPressMsg:
		if q.confirm {
			q.confirm = false
			if !key.Matches(msg, q.keys.Confirm) {
				q.note, q.noteBad = "Cancelled: nothing changed.", false
				return nil
			}
			src, ctx, timeout := q.src, q.ctx, q.timeout
			q.note, q.noteBad = "Requeueing dead letters…", false
			return func() tea.Msg {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				res, err := src.RequeueDead(ctx, requeueLimit)
				return deadMsg{res: res, err: err}
			}
		}
		if key.Matches(msg, q.keys.Retry) && q.src != nil {
			q.confirm = true
			return nil
		}
	}
	return q.base.Update(msg)
}

// View renders the question or the last result above the content.
func (q *Queue) View() string {
	var head string
	switch {
	case q.confirm:
		head = q.styles.Warn.Render("Requeue the dead letters whose row still exists? y to confirm, any other key cancels")
	case q.note != "" && q.noteBad:
		head = q.styles.Bad.Render(q.note)
	case q.note != "":
		head = q.styles.OK.Render(q.note)
	case q.src != nil && q.snap.Redis.OK && q.snap.Queue != nil && q.snap.Queue.Dead > 0:
		head = q.styles.Muted.Render("R requeues dead letters")
	default:
		return q.base.View()
	}
	h := q.height
	q.height = max(0, h-1)
	body := q.base.View()
	q.height = h
	line, _ := theme.Clip([]string{head}, 0, q.width, 1)
	if h == 0 {
		return ""
	}
	if q.height-1 <= 0 {
		return line[0]
	}
	return line[0] + "\n" + body
}

// Title names the screen in the tab bar.
func (*Queue) Title() string { return "Queue" }

// content builds the screen's lines from the snapshot.
func (q *Queue) content() []string {
	s, st := q.snap, q.styles
	lines := []string{st.Section.Render("Streams")}
	if s.Queue == nil {
		lines = append(lines, q.health("Redis  ", s.Redis, ""), "")
	} else {
		rows := []string{"KIND\tLENGTH\tPENDING\tLAG\tCONSUMERS\tGROUP"}
		for _, ss := range s.Queue.Streams {
			group := "ok"
			if !ss.GroupExists {
				group = "missing"
			}
			rows = append(rows, fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%s", ss.Kind, ss.Length, ss.Pending, ss.Lag, len(ss.Consumers), group))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
		next := ""
		if s.Queue.Retry.NextDue != nil {
			next = ", next due in " + theme.Duration(s.Queue.Retry.NextDue.Sub(s.Taken))
		}
		lines = append(lines, "",
			fmt.Sprintf("Retry set  %d%s", s.Queue.Retry.Size, next),
			fmt.Sprintf("Inflight   %d", s.Queue.Inflight),
			fmt.Sprintf("Dead       %d", s.Queue.Dead))
	}
	lines = append(lines, "SQL        "+sqlQueue(s), "", st.Section.Render("Recent dead letters"))
	switch {
	case q.redisDown() != nil:
		lines = append(lines, q.redisDown()...)
	case len(s.DeadLetters) == 0:
		lines = append(lines, st.Muted.Render("none"))
	default:
		rows := []string{"AGE\tKIND\tID\tDOMAIN\tCOUNT\tREASON"}
		for _, d := range s.DeadLetters {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s\t%d\t%s", theme.Age(s.Taken, d.Time), d.Kind, d.Job.ID,
				orDash(d.Job.Domain), d.Count, d.Reason))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	return lines
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
