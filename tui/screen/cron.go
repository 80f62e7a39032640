package screen

import (
	"fmt"

	"github.com/postalgo/postal/tui/theme"
)

// Cron shows who holds the cron lease and, for every task, its last run:
// when, how long, whether it succeeded and in which lease term; then the
// errors of the tasks whose last run failed.
type Cron struct{ base }

// NewCron returns the cron screen.
func NewCron(st theme.Styles, km theme.KeyMap) *Cron {
	s := &Cron{base{styles: st, keys: km}}
	s.build = s.content
	return s
}

// Title names the screen in the tab bar.
func (*Cron) Title() string { return "Cron" }

// content builds the screen's lines from the snapshot.
func (c *Cron) content() []string {
	s, st := c.snap, c.styles
	if c.redisDown() != nil {
		return []string{c.health("Redis  ", s.Redis, ""), "", st.Muted.Render("Leases and task records live in Redis.")}
	}
	var lines []string
	holder := st.Warn.Render("nobody holds the cron lease: no task runs")
	for _, l := range s.Leases {
		if l.Name == "cron" && l.Held() {
			holder = fmt.Sprintf("held by %s (token %d, %s left)", l.Owner, l.Token, theme.Duration(l.TTL))
		}
	}
	lines = append(lines, "Cron lease  "+holder, "", st.Section.Render(fmt.Sprintf("Tasks (%d)", len(s.Cron))))
	if len(s.Cron) == 0 {
		lines = append(lines, st.Muted.Render("No task has run yet."))
		return lines
	}
	rows := []string{"TASK\tLAST RUN\tTOOK\tRESULT\tRUNS\tTOKEN"}
	var failed []string
	for _, t := range s.Cron {
		result := "ok"
		if !t.Last.OK {
			result = "FAILED"
			failed = append(failed, st.Bad.Render(t.Task)+": "+t.Last.Error)
		}
		rows = append(rows, fmt.Sprintf("%s\t%s ago\t%s\t%s\t%d\t%d", t.Task, theme.Age(s.Taken, t.Last.Started),
			theme.Duration(t.Last.Duration), result, len(t.Recent), t.Last.Token))
	}
	lines = append(lines, theme.Table(st.Header, rows)...)
	if len(failed) > 0 {
		lines = append(lines, "", st.Section.Render("Last errors"))
		lines = append(lines, failed...)
	}
	return lines
}
