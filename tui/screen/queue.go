package screen

import (
	"fmt"

	"github.com/postalgo/postal/tui/theme"
)

// Queue shows each stream (length, pending, lag, consumers, whether its
// group exists), the retry set, the inflight hash, the SQL counts beside
// them, and the most recent dead letters.
type Queue struct{ base }

// NewQueue returns the queue screen.
func NewQueue(st theme.Styles, km theme.KeyMap) *Queue {
	s := &Queue{base{styles: st, keys: km}}
	s.build = s.content
	return s
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
