package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Per-server statistics (table server_statistics), as Postal keeps
// stats_hourly/daily/monthly: counts per server and UTC hour, day and
// month. They are written by the transaction that stores what they count
// (InsertSubmissions, CommitOutcomes), aggregated per transaction: one
// multi-row upsert per transaction, whatever the number of messages.

// StatCounts are the counters of one server and period.
type StatCounts struct {
	// Incoming and Outgoing count messages stored, by scope (generated
	// bounces are outgoing).
	Incoming int64 `json:"incoming"`
	Outgoing int64 `json:"outgoing"`
	// Spam is kept for Postal's shape; as in Postal nothing increments it.
	Spam int64 `json:"spam"`
	// Bounces counts original messages marked Bounced by a received DSN.
	Bounces int64 `json:"bounces"`
	// Held counts messages held, at acceptance or by an outcome.
	Held int64 `json:"held"`
	// Sent, SoftFail and HardFail count delivery outcomes.
	Sent     int64 `json:"sent"`
	SoftFail int64 `json:"soft_fail"`
	HardFail int64 `json:"hard_fail"`
}

// Add returns c plus d.
func (c StatCounts) Add(d StatCounts) StatCounts {
	return StatCounts{Incoming: c.Incoming + d.Incoming, Outgoing: c.Outgoing + d.Outgoing, Spam: c.Spam + d.Spam,
		Bounces: c.Bounces + d.Bounces, Held: c.Held + d.Held, Sent: c.Sent + d.Sent, SoftFail: c.SoftFail + d.SoftFail,
		HardFail: c.HardFail + d.HardFail}
}

// IsZero reports whether every counter is zero.
func (c StatCounts) IsZero() bool { return c == StatCounts{} }

// Period is a statistics period.
type Period string

// The periods kept.
const (
	PeriodHour  Period = "hour"
	PeriodDay   Period = "day"
	PeriodMonth Period = "month"
)

// Periods returns every Period, shortest first.
func Periods() []Period { return []Period{PeriodHour, PeriodDay, PeriodMonth} }

// Start returns the start (UTC) of the period that contains t.
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	switch p {
	case PeriodDay:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case PeriodMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	default:
		return t.Truncate(time.Hour)
	}
}

// Next returns the start of the period after the one that starts at start.
func (p Period) Next(start time.Time) time.Time {
	switch p {
	case PeriodDay:
		return start.AddDate(0, 0, 1)
	case PeriodMonth:
		return start.AddDate(0, 1, 0)
	default:
		return start.Add(time.Hour)
	}
}

// tally accumulates a transaction's counts per server.
type tally map[int64]*StatCounts

func (t tally) at(serverID int64) *StatCounts {
	c := t[serverID]
	if c == nil {
		c = &StatCounts{}
		t[serverID] = c
	}
	return c
}

// total sums every server's counts.
func (t tally) total() StatCounts {
	var sum StatCounts
	for _, c := range t {
		sum = sum.Add(*c)
	}
	return sum
}

// countMessage counts a stored message.
func (t tally) countMessage(m NewMessage) {
	if m.ServerID == 0 {
		return
	}
	c := t.at(m.ServerID)
	if m.Scope == ScopeIncoming {
		c.Incoming++
	} else {
		c.Outgoing++
	}
	if m.Held {
		c.Held++
	}
}

// countOutcome counts an applied outcome of a row of server serverID.
func (t tally) countOutcome(serverID int64, o *Outcome) {
	if serverID == 0 {
		return
	}
	c := t.at(serverID)
	switch o.status {
	case StatusSent:
		c.Sent++
	case StatusSoftFail:
		c.SoftFail++
	case StatusHardFail:
		c.HardFail++
	case StatusHeld:
		c.Held++
	}
	c.Bounces += int64(len(o.effects.Links))
}

// statColumns are the counter columns in StatCounts order.
const statColumns = `incoming, outgoing, spam, bounces, held, sent, soft_fail, hard_fail`

func (c *StatCounts) fields() []any {
	return []any{&c.Incoming, &c.Outgoing, &c.Spam, &c.Bounces, &c.Held, &c.Sent, &c.SoftFail, &c.HardFail}
}

// write adds the tally to every period containing now: one statement per
// 300 servers (one in practice).
func (t tally) write(ctx context.Context, tx tx, now time.Time) error {
	for _, st := range t.statements(now) {
		if _, err := tx.exec(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("update statistics: %w", err)
		}
	}
	return nil
}

// statement is one SQL statement (`?` placeholders) and its arguments.
type statement struct {
	q    string
	args []any
}

// statements returns the upserts that add the tally's non-zero counts to
// every period containing now, servers in a fixed (lock) order; none when
// there is nothing to count.
func (t tally) statements(now time.Time) []statement {
	servers := make([]int64, 0, len(t))
	for id, c := range t {
		if !c.IsZero() {
			servers = append(servers, id)
		}
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i] < servers[j] }) // a fixed lock order
	var out []statement
	for len(servers) > 0 {
		n := min(len(servers), statServersPerStatement)
		out = append(out, t.upsert(now, servers[:n]))
		servers = servers[n:]
	}
	return out
}

// statServersPerStatement bounds one upsert's rows (3 per server) so its
// arguments stay far below SQLite's and PostgreSQL's limits.
const statServersPerStatement = 300

// upsert is the statement that adds the counts of servers to every period
// containing now.
func (t tally) upsert(now time.Time, servers []int64) statement {
	var b strings.Builder
	b.WriteString(`INSERT INTO server_statistics (server_id, period, period_start, ` + statColumns + `) VALUES `)
	args := make([]any, 0, len(servers)*len(Periods())*11)
	for i, id := range servers {
		c := t[id]
		for j, p := range Periods() {
			if i > 0 || j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, id, string(p), p.Start(now).UnixMicro(), c.Incoming, c.Outgoing, c.Spam, c.Bounces, c.Held,
				c.Sent, c.SoftFail, c.HardFail)
		}
	}
	b.WriteString(` ON CONFLICT (server_id, period, period_start) DO UPDATE SET
		incoming = server_statistics.incoming + excluded.incoming, outgoing = server_statistics.outgoing + excluded.outgoing,
		spam = server_statistics.spam + excluded.spam, bounces = server_statistics.bounces + excluded.bounces,
		held = server_statistics.held + excluded.held, sent = server_statistics.sent + excluded.sent,
		soft_fail = server_statistics.soft_fail + excluded.soft_fail, hard_fail = server_statistics.hard_fail + excluded.hard_fail`)
	return statement{q: b.String(), args: args}
}

// MaxStatisticsRows caps one Statistics call.
const MaxStatisticsRows = 10000

// StatRow is one period's counts.
type StatRow struct {
	Start time.Time `json:"start"`
	StatCounts
}

// Statistics returns n consecutive periods of p, the first starting at
// p.Start(start), for server serverID (0: the sum over every server). A
// period with no row has zero counts. n is 1..MaxStatisticsRows; a failed
// query returns a wrapped error.
func (s *Store) Statistics(ctx context.Context, serverID int64, p Period, start time.Time, n int) ([]StatRow, error) {
	if n <= 0 || n > MaxStatisticsRows {
		return nil, fmt.Errorf("statistics: %d periods is not between 1 and %d", n, MaxStatisticsRows)
	}
	switch p {
	case PeriodHour, PeriodDay, PeriodMonth:
	default:
		return nil, fmt.Errorf("statistics: unknown period %q", p)
	}
	out := make([]StatRow, n)
	index := make(map[int64]int, n)
	t := p.Start(start)
	for i := range out {
		out[i].Start = t
		index[t.UnixMicro()] = i
		t = p.Next(t)
	}
	sums := `SUM(incoming), SUM(outgoing), SUM(spam), SUM(bounces), SUM(held), SUM(sent), SUM(soft_fail), SUM(hard_fail)`
	q := `SELECT period_start, ` + sums + ` FROM server_statistics WHERE period = ? AND period_start >= ? AND period_start < ?`
	args := []any{string(p), out[0].Start.UnixMicro(), t.UnixMicro()}
	if serverID != 0 {
		q += ` AND server_id = ?`
		args = append(args, serverID)
	}
	rows, err := s.query(ctx, q+` GROUP BY period_start`, args...)
	if err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		var c StatCounts
		dest := []any{&at}
		for _, f := range c.fields() {
			dest = append(dest, &nullInt{p: f.(*int64)})
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("statistics: %w", err)
		}
		if i, ok := index[at]; ok {
			out[i].StatCounts = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	return out, nil
}
