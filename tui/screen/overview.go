package screen

import (
	"fmt"
	"strings"

	"github.com/postalgo/postal/tui/source"
	"github.com/postalgo/postal/tui/theme"
)

// Overview shows whether the database and Redis answer, the schema
// version, the live processes, the lease holders and the queue totals on
// both sides.
type Overview struct{ base }

// NewOverview returns the overview screen.
func NewOverview(st theme.Styles, km theme.KeyMap) *Overview {
	s := &Overview{base{styles: st, keys: km}}
	s.build = s.content
	return s
}

// Title names the screen in the tab bar.
func (*Overview) Title() string { return "Overview" }

// content builds the screen's lines from the snapshot.
func (o *Overview) content() []string {
	s, st := o.snap, o.styles
	var lines []string
	schema := ""
	if s.Schema != nil {
		state := st.OK.Render("current")
		if !s.Schema.UpToDate() {
			state = st.Bad.Render("needs `postalctl upgrade`")
			if s.Schema.Current > s.Schema.Latest {
				state = st.Bad.Render("newer than this binary")
			}
		}
		schema = fmt.Sprintf("schema %d of %d, %s", s.Schema.Current, s.Schema.Latest, state)
	}
	lines = append(lines, o.health("Database  ", s.Database, schema), o.health("Redis     ", s.Redis, ""), "")

	lines = append(lines, st.Section.Render(fmt.Sprintf("Processes (%d)", len(s.Processes))))
	if down := o.redisDown(); down != nil {
		lines = append(lines, down...)
	} else if len(s.Processes) == 0 {
		lines = append(lines, st.Warn.Render("No postald process has a live heartbeat."))
	} else {
		rows := []string{"ID\tROLES\tVERSION\tUP\tSEEN"}
		for _, p := range s.Processes {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s ago", p.ID, strings.Join(p.Roles, ","), p.Version,
				theme.Age(s.Taken, p.Started), theme.Age(s.Taken, p.Seen)))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	lines = append(lines, "", st.Section.Render("Leases"))
	if down := o.redisDown(); down != nil {
		lines = append(lines, down...)
	} else {
		rows := []string{"NAME\tHOLDER\tTOKEN\tTTL"}
		for _, l := range s.Leases {
			if !l.Held() {
				rows = append(rows, l.Name+"\t(none)\t-\t-")
				continue
			}
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s", l.Name, l.Owner, l.Token, theme.Duration(l.TTL)))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	lines = append(lines, "", st.Section.Render("Queue"), "SQL    "+sqlQueue(s))
	if q := s.Queue; q != nil {
		var lag, pending int64
		for _, ss := range q.Streams {
			lag += ss.Lag
			pending += ss.Pending
		}
		dead := fmt.Sprint(q.Dead)
		if q.Dead > 0 {
			dead = st.Warn.Render(dead)
		}
		lines = append(lines, fmt.Sprintf("Redis  lag %d · pending %d · retry %d · inflight %d · dead %s",
			lag, pending, q.Retry.Size, q.Inflight, dead))
	} else {
		lines = append(lines, "Redis  "+st.Muted.Render("unavailable"))
	}
	return lines
}

// sqlQueue renders the SQL queue counts.
func sqlQueue(s source.Snapshot) string {
	if s.SQLQueue == nil {
		return "unavailable"
	}
	return fmt.Sprintf("%d queued · %d due · %d locked", s.SQLQueue.Total, s.SQLQueue.Due, s.SQLQueue.Locked)
}
