package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Read-only figures for operators: the queue's shape (as Postfix's qshape)
// and message throughput per time bucket. Both aggregate in SQL, so their
// cost grows with the rows in range, not with what is returned.

// ShapeBuckets are the age buckets of QueueShape, as qshape's defaults: a
// row falls in the first bucket whose bound its age is below; the last
// bucket is open-ended.
func ShapeBuckets() []time.Duration {
	return []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute,
		160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute}
}

// MaxShapeDomains caps QueueShape's rows.
const MaxShapeDomains = 1000

// ShapeRow is the backlog of one destination domain: Counts[i] is the rows
// whose age falls in bucket i (len(ShapeBuckets())+1 buckets, the last one
// older than every bound).
type ShapeRow struct {
	Scope  string  `json:"scope"`
	Domain string  `json:"domain"`
	Total  int64   `json:"total"`
	Counts []int64 `json:"counts"`
}

// QueueShape is the backlog by destination and age.
type QueueShape struct {
	// Buckets are the upper bounds of the age buckets (the last Counts
	// entry is older than all of them).
	Buckets []time.Duration `json:"buckets"`
	// Total sums every queued row, whichever domain.
	Total ShapeRow `json:"total"`
	// Domains are the domains with the most queued rows, most first.
	Domains []ShapeRow `json:"domains"`
}

// QueueShape counts queued rows by destination domain and age (time since
// the row was created) at now, for the limit domains with the most rows
// (1..MaxShapeDomains). It returns a wrapped error when the query fails.
func (s *Store) QueueShape(ctx context.Context, now time.Time, limit int) (QueueShape, error) {
	if limit <= 0 || limit > MaxShapeDomains {
		return QueueShape{}, fmt.Errorf("queue shape: limit %d is not between 1 and %d", limit, MaxShapeDomains)
	}
	buckets := ShapeBuckets()
	// bucket i counts rows created in (now-b[i], now-b[i-1]].
	var cols []string
	var args []any
	prev := now.UnixMicro() + 1
	for _, b := range buckets {
		edge := now.Add(-b).UnixMicro()
		cols = append(cols, `SUM(CASE WHEN created_at > ? AND created_at <= ? THEN 1 ELSE 0 END)`)
		args = append(args, edge, prev)
		prev = edge
	}
	cols = append(cols, `SUM(CASE WHEN created_at <= ? THEN 1 ELSE 0 END)`)
	args = append(args, prev)
	sel := strings.Join(cols, ", ")
	out := QueueShape{Buckets: buckets, Domains: []ShapeRow{}}
	scan := func(sc interface{ Scan(...any) error }, r *ShapeRow, keyed bool) error {
		r.Counts = make([]int64, len(buckets)+1)
		var dest []any
		if keyed {
			dest = append(dest, &r.Scope, &r.Domain)
		}
		dest = append(dest, &r.Total)
		nulls := make([]*int64, len(r.Counts))
		for i := range r.Counts {
			nulls[i] = new(int64)
			dest = append(dest, &nullInt{p: nulls[i]})
		}
		if err := sc.Scan(dest...); err != nil {
			return err
		}
		for i, p := range nulls {
			r.Counts[i] = *p
		}
		return nil
	}
	if err := scan(s.queryRow(ctx, `SELECT count(*), `+sel+` FROM queued_messages`, args...), &out.Total, false); err != nil {
		return QueueShape{}, fmt.Errorf("queue shape: %w", err)
	}
	out.Total.Domain = "TOTAL"
	rows, err := s.query(ctx, `SELECT scope, domain, count(*), `+sel+` FROM queued_messages GROUP BY scope, domain
		ORDER BY count(*) DESC, domain LIMIT ?`, append(args, limit)...)
	if err != nil {
		return QueueShape{}, fmt.Errorf("queue shape: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ShapeRow
		if err := scan(rows, &r, true); err != nil {
			return QueueShape{}, fmt.Errorf("queue shape: %w", err)
		}
		out.Domains = append(out.Domains, r)
	}
	if err := rows.Err(); err != nil {
		return QueueShape{}, fmt.Errorf("queue shape: %w", err)
	}
	return out, nil
}

// nullInt scans an integer that may be NULL (SUM over no rows) as 0.
type nullInt struct{ p *int64 }

func (n *nullInt) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*n.p = 0
	case int64:
		*n.p = x
	case float64:
		*n.p = int64(x)
	case []byte:
		_, err := fmt.Sscan(string(x), n.p)
		return err
	case string:
		_, err := fmt.Sscan(x, n.p)
		return err
	default:
		return fmt.Errorf("cannot scan %T as an integer", v)
	}
	return nil
}

// MaxSeriesPoints caps a Series.
const MaxSeriesPoints = 10000

// Series is message throughput in equal time buckets: bucket i covers
// [Start+i*Step, Start+(i+1)*Step). Accepted counts messages received;
// the others count delivery rows by status, which is what a delivery
// attempt's outcome records.
type Series struct {
	Start    time.Time     `json:"start"`
	Step     time.Duration `json:"step"`
	Accepted []int64       `json:"accepted"`
	Sent     []int64       `json:"sent"`
	SoftFail []int64       `json:"soft_fail"`
	HardFail []int64       `json:"hard_fail"`
	Held     []int64       `json:"held"`
	Bounced  []int64       `json:"bounced"`
}

// Throughput counts messages received and delivery outcomes in n buckets
// of step starting at start, for server serverID (0: every server). It
// reads the messages_by_time, messages_by_server_time and deliveries_by_time
// indexes. n is 1..MaxSeriesPoints and step at least a second; a failed
// query returns a wrapped error.
func (s *Store) Throughput(ctx context.Context, serverID int64, start time.Time, step time.Duration, n int) (Series, error) {
	if n <= 0 || n > MaxSeriesPoints || step < time.Second {
		return Series{}, fmt.Errorf("throughput: %d buckets of %s is out of bounds", n, step)
	}
	out := Series{Start: start, Step: step}
	for _, p := range []*[]int64{&out.Accepted, &out.Sent, &out.SoftFail, &out.HardFail, &out.Held, &out.Bounced} {
		*p = make([]int64, n)
	}
	from, width := start.UnixMicro(), step.Microseconds()
	to := from + width*int64(n)
	q := `SELECT (timestamp - ?) / ?, count(*) FROM messages WHERE timestamp >= ? AND timestamp < ?`
	args := []any{from, width, from, to}
	if serverID != 0 {
		q += ` AND server_id = ?`
		args = append(args, serverID)
	}
	if err := s.buckets(ctx, q+` GROUP BY 1`, args, func(b int64, _ string, c int64) {
		if b >= 0 && b < int64(n) {
			out.Accepted[b] += c
		}
	}, false); err != nil {
		return Series{}, fmt.Errorf("throughput: %w", err)
	}
	q = `SELECT (d.timestamp - ?) / ?, d.status, count(*) FROM deliveries d`
	args = []any{from, width}
	if serverID != 0 {
		q += ` JOIN messages m ON m.id = d.message_id`
	}
	q += ` WHERE d.timestamp >= ? AND d.timestamp < ?`
	args = append(args, from, to)
	if serverID != 0 {
		q += ` AND m.server_id = ?`
		args = append(args, serverID)
	}
	byStatus := map[string][]int64{StatusSent: out.Sent, StatusSoftFail: out.SoftFail, StatusHardFail: out.HardFail,
		StatusHeld: out.Held, StatusBounced: out.Bounced}
	if err := s.buckets(ctx, q+` GROUP BY 1, 2`, args, func(b int64, status string, c int64) {
		if series, ok := byStatus[status]; ok && b >= 0 && b < int64(n) {
			series[b] += c
		}
	}, true); err != nil {
		return Series{}, fmt.Errorf("throughput: %w", err)
	}
	return out, nil
}

func (s *Store) buckets(ctx context.Context, q string, args []any, add func(bucket int64, status string, count int64), withStatus bool) error {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b, c   int64
			status string
		)
		dest := []any{&b, &c}
		if withStatus {
			dest = []any{&b, &status, &c}
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		add(b, status, c)
	}
	return rows.Err()
}

// FailedWebhookRequests returns the most recent webhook requests whose last
// attempt failed (error set), newest first, at most limit (1..1000).
func (s *Store) FailedWebhookRequests(ctx context.Context, limit int) ([]*WebhookRequest, error) {
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("failed webhook requests: limit %d is not between 1 and 1000", limit)
	}
	rows, err := s.query(ctx, `SELECT id FROM webhook_requests WHERE error IS NOT NULL AND error <> '' ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("failed webhook requests: %w", err)
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("failed webhook requests: %w", err)
	}
	reqs, err := s.WebhookRequests(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := map[int64]*WebhookRequest{}
	for _, r := range reqs {
		byID[r.ID] = r
	}
	out := []*WebhookRequest{}
	for _, id := range ids {
		if r, ok := byID[id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}
