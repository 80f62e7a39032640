package screen

import (
	"fmt"
	"strings"
	"time"

	"github.com/postalgo/postal/tui/source"
	"github.com/postalgo/postal/tui/theme"
)

// Overview is the dashboard: whether the database and Redis answer, the
// schema version, the live processes, the lease holders, the queue on both
// sides (per stream, with the oldest pending entry's idle time), throughput
// for the last hour as sparklines with the current rate, the top
// destinations by backlog, failing cron tasks and failed webhook requests.
type Overview struct{ base }

// NewOverview returns the overview screen.
func NewOverview(st theme.Styles, km theme.KeyMap) *Overview {
	s := &Overview{base{styles: st, keys: km}}
	s.build = s.content
	return s
}

// Title names the screen in the tab bar.
func (*Overview) Title() string { return "Dashboard" }

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
		rows := []string{"STREAM	READY	PENDING	OLDEST IDLE"}
		for _, ss := range q.Streams {
			var idle int64
			for _, c := range ss.Consumers {
				if c.Pending > 0 {
					idle = max(idle, c.IdleMS)
				}
			}
			oldest := "-"
			if idle > 0 {
				oldest = theme.Duration(time.Duration(idle) * time.Millisecond)
			}
			rows = append(rows, fmt.Sprintf("%s\t%d\t%d\t%s", ss.Kind, ss.Lag, ss.Pending, oldest))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	} else {
		lines = append(lines, "Redis  "+st.Muted.Render("unavailable"))
	}
	from := map[string]string{source.ThroughputRedis: " · Redis counters", source.ThroughputSQL: " · from SQL (no Redis counters)",
		source.ThroughputMixed: " · Redis counters, older minutes from SQL"}[s.ThroughputFrom]
	lines = append(lines, "", st.Section.Render("Throughput, last hour per minute")+st.Muted.Render(from))
	lines = append(lines, o.throughput()...)
	lines = append(lines, "", st.Section.Render("Top destinations by backlog"))
	switch {
	case s.Shape == nil:
		lines = append(lines, st.Muted.Render("unavailable"))
	case len(s.Shape.Domains) == 0:
		lines = append(lines, st.Muted.Render("queue empty"))
	default:
		rows := []string{"DOMAIN\tSCOPE\tQUEUED\tOLDER THAN 5m"}
		for _, d := range s.Shape.Domains[:min(5, len(s.Shape.Domains))] {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%d", orDash(d.Domain), d.Scope, d.Total, d.Total-d.Counts[0]))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	lines = append(lines, "", st.Section.Render("Recent cron runs"))
	if len(s.Cron) == 0 {
		lines = append(lines, st.Muted.Render("none recorded"))
	}
	for _, c := range s.Cron {
		state := st.OK.Render("ok")
		if !c.Last.OK {
			state = st.Bad.Render("FAILED") + " " + c.Last.Error
		}
		lines = append(lines, fmt.Sprintf("%-20s %8s ago  %s", c.Task, theme.Age(s.Taken, c.Last.Started), state))
	}
	lines = append(lines, "", st.Section.Render(fmt.Sprintf("Webhook failures (%d most recent)", len(s.WebhookFailures))))
	if len(s.WebhookFailures) == 0 {
		lines = append(lines, st.Muted.Render("none"))
	}
	for _, w := range s.WebhookFailures {
		lines = append(lines, fmt.Sprintf("%s ago  %s  %s  attempts %d  %s", theme.Age(s.Taken, w.CreatedAt), w.Event,
			cell(w.URL, 40), w.Attempts, st.Bad.Render(cell(w.Error, 80))))
	}
	return lines
}

// throughput renders one sparkline per series with its last full minute.
func (o *Overview) throughput() []string {
	s, st := o.snap, o.styles
	if s.Throughput == nil {
		return []string{st.Muted.Render("unavailable")}
	}
	t := s.Throughput
	width := max(10, min(len(t.Accepted), o.width-26))
	var lines []string
	for _, row := range []struct {
		name string
		v    []int64
	}{{"accepted", t.Accepted}, {"sent", t.Sent}, {"soft-failed", t.SoftFail}, {"hard-failed", t.HardFail},
		{"held", t.Held}, {"bounced", t.Bounced}} {
		rate := int64(0)
		if n := len(row.v); n >= 2 {
			rate = row.v[n-2] // the last full minute
		}
		lines = append(lines, fmt.Sprintf("%-11s %s %6d/min", row.name, theme.Sparkline(row.v, width), rate))
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
