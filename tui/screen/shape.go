package screen

import (
	"fmt"
	"strings"

	"github.com/postalgo/postal/tui/theme"
)

// Shape is the queue's shape, as Postfix's qshape: the SQL backlog by
// destination domain in age buckets (rows most first, a TOTAL row on top),
// then the Redis retry set by due time.
type Shape struct{ base }

// NewShape returns the queue-shape screen.
func NewShape(st theme.Styles, km theme.KeyMap) *Shape {
	s := &Shape{base{styles: st, keys: km}}
	s.build = s.content
	return s
}

// Title names the screen in the tab bar.
func (*Shape) Title() string { return "Shape" }

func (q *Shape) content() []string {
	s, st := q.snap, q.styles
	lines := []string{st.Section.Render("Backlog by destination and age (minutes)")}
	if s.Shape == nil {
		lines = append(lines, q.health("Database  ", s.Database, ""))
	} else {
		head := []string{"DOMAIN", "T"}
		prev := 0
		for _, b := range s.Shape.Buckets {
			head = append(head, fmt.Sprint(int(b.Minutes())))
			prev = int(b.Minutes())
		}
		head = append(head, fmt.Sprintf("%d+", prev))
		rows := []string{strings.Join(head, "\t")}
		for _, r := range append(append(s.Shape.Domains[:0:0], s.Shape.Total), s.Shape.Domains...) {
			cells := []string{orDash(cell(r.Domain, 40)), fmt.Sprint(r.Total)}
			for _, c := range r.Counts {
				cells = append(cells, fmt.Sprint(c))
			}
			rows = append(rows, strings.Join(cells, "\t"))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	lines = append(lines, "", st.Section.Render("Retry set by due time"))
	switch {
	case q.redisDown() != nil:
		lines = append(lines, q.redisDown()...)
	case len(s.RetryShape) == 0:
		lines = append(lines, st.Muted.Render("empty"))
	default:
		rows := []string{"DUE\tENTRIES"}
		for i, b := range s.RetryShape {
			label := "later"
			switch {
			case !b.Due.IsZero() && i == 0:
				label = "overdue"
			case !b.Due.IsZero():
				label = "within " + theme.Duration(b.Due.Sub(s.Taken))
			}
			rows = append(rows, fmt.Sprintf("%s\t%d", label, b.Count))
		}
		lines = append(lines, theme.Table(st.Header, rows)...)
	}
	return lines
}
