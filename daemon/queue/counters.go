package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Per-minute throughput counters for the operations console. Writers add
// to the hash of the current minute in the round trip they already make
// (the completer's ack, the intake dispatcher's round); readers take the
// last hour in one round trip. The counters are a live view: SQL's
// statistics (store.Statistics) and the delivery rows are the record, and
// a reader falls back to them for minutes the counters cannot vouch for.
//
// Keys (under the hash-tagged prefix):
//
//	stats:minute:<unix minute>  hash; fields accepted, sent, soft_fail,
//	                            hard_fail, held, bounced; TTL CounterTTL
//	stats:since                 unix ms of the first write after the
//	                            counters were last missing; its TTL is
//	                            renewed by every write
//
// A minute after stats:since's minute is complete as far as Redis kept it;
// stats:since's own minute and earlier ones (or every minute, when the key
// is missing: Redis lost its data, or nothing was counted for CounterTTL)
// must be read from SQL.

// CounterTTL is how long a minute's counters and the since mark live.
const CounterTTL = 2 * time.Hour

// MaxCounterMinutes caps one Minutes call.
const MaxCounterMinutes = 120

// Counts are one minute's throughput: messages accepted (stored), and
// delivery outcomes recorded.
type Counts struct {
	Accepted int64 `json:"accepted"`
	Sent     int64 `json:"sent"`
	SoftFail int64 `json:"soft_fail"`
	HardFail int64 `json:"hard_fail"`
	Held     int64 `json:"held"`
	Bounced  int64 `json:"bounced"`
}

// IsZero reports whether every counter is zero.
func (c Counts) IsZero() bool { return c == Counts{} }

func (c *Counts) fields() []struct {
	name string
	v    *int64
} {
	return []struct {
		name string
		v    *int64
	}{{"accepted", &c.Accepted}, {"sent", &c.Sent}, {"soft_fail", &c.SoftFail}, {"hard_fail", &c.HardFail},
		{"held", &c.Held}, {"bounced", &c.Bounced}}
}

func (q *Queue) minuteKey(t time.Time) string {
	return q.keys.Key("stats", "minute", strconv.FormatInt(t.Unix()/60, 10))
}

func (q *Queue) sinceKey() string { return q.keys.Key("stats", "since") }

// addCounts queues the commands that add c to at's minute on p.
func (q *Queue) addCounts(ctx context.Context, p redis.Pipeliner, at time.Time, c Counts) {
	key := q.minuteKey(at)
	for _, f := range c.fields() {
		if *f.v != 0 {
			p.HIncrBy(ctx, key, f.name, *f.v)
		}
	}
	p.Expire(ctx, key, CounterTTL)
	p.SetNX(ctx, q.sinceKey(), unixMS(at), CounterTTL)
	p.Expire(ctx, q.sinceKey(), CounterTTL)
}

// Count adds c to the counters of at's minute in one round trip. Zero
// counts are a no-op. It returns a wrapped error when Redis fails (the
// counts may then be partly added).
func (q *Queue) Count(ctx context.Context, at time.Time, c Counts) error {
	if c.IsZero() {
		return nil
	}
	if _, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		q.addCounts(ctx, p, at, c)
		return nil
	}); err != nil {
		return fmt.Errorf("queue: count: %w", err)
	}
	return nil
}

// AckCounted is Ack plus Count in ONE round trip: the entries are acked
// (atomically, as Ack does) and c is added to at's minute. It returns a
// wrapped error when Redis fails; the error says whether the ack or only
// the counting failed (errors.Is(err, ErrCountOnly) for the latter, in
// which case every entry was acked).
func (q *Queue) AckCounted(ctx context.Context, kind Kind, at time.Time, c Counts, ds ...Delivery) error {
	if len(ds) == 0 {
		return q.Count(ctx, at, c)
	}
	keys, args, err := q.ackArgs(kind, ds)
	if err != nil {
		return err
	}
	var ack *redis.Cmd
	cmds, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		ack = q.scripts.ack.EvalSha(ctx, p, keys, args...)
		if !c.IsZero() {
			q.addCounts(ctx, p, at, c)
		}
		return nil
	})
	if ack != nil && redis.HasErrorPrefix(ack.Err(), "NOSCRIPT") {
		// The script cache was empty (Redis restarted): the counters went
		// through, the ack runs again with the script's body.
		if err := q.scripts.ack.Run(ctx, q.c, keys, args...).Err(); err != nil {
			return fmt.Errorf("queue: ack %d %s entries: %w", len(ds), kind, err)
		}
		err = nil
		for _, cmd := range cmds[1:] {
			if cmd.Err() != nil {
				err = cmd.Err()
			}
		}
	} else if ack == nil || ack.Err() != nil {
		if ack != nil {
			err = ack.Err()
		}
		return fmt.Errorf("queue: ack %d %s entries: %w", len(ds), kind, err)
	}
	q.metrics.add(cAcked, kind, len(ds))
	if err != nil {
		return fmt.Errorf("queue: count: %w: %w", ErrCountOnly, err)
	}
	return nil
}

// ErrCountOnly marks an AckCounted error where the ack succeeded and only
// the counting failed.
var ErrCountOnly = errors.New("entries acked, counters not updated")

// Minutes are the per-minute counters of a time range.
type Minutes struct {
	// Start is the first minute.
	Start time.Time
	// Counts[i] is the minute Start + i minutes.
	Counts []Counts
	// Since is stats:since: minutes that start after Since's minute are
	// complete; zero when the mark is missing (no minute is).
	Since time.Time
}

// Complete reports whether minute i is fully counted in Redis (it starts
// after the minute of Since).
func (m Minutes) Complete(i int) bool {
	if m.Since.IsZero() {
		return false
	}
	return m.Start.Add(time.Duration(i) * time.Minute).After(m.Since.Truncate(time.Minute))
}

// ReadMinutes reads the counters of n minutes (1..MaxCounterMinutes) from
// the minute containing start, in one round trip. It returns a wrapped
// error when Redis fails.
func (q *Queue) ReadMinutes(ctx context.Context, start time.Time, n int) (Minutes, error) {
	if n <= 0 || n > MaxCounterMinutes {
		return Minutes{}, fmt.Errorf("queue: read minutes: %d minutes is not between 1 and %d", n, MaxCounterMinutes)
	}
	start = start.Truncate(time.Minute)
	out := Minutes{Start: start, Counts: make([]Counts, n)}
	hashes := make([]*redis.MapStringStringCmd, n)
	var since *redis.StringCmd
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		since = p.Get(ctx, q.sinceKey())
		for i := range hashes {
			hashes[i] = p.HGetAll(ctx, q.minuteKey(start.Add(time.Duration(i)*time.Minute)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Minutes{}, fmt.Errorf("queue: read minutes: %w", err)
	}
	if ms, err := since.Int64(); err == nil {
		out.Since = time.UnixMilli(ms)
	} else if !errors.Is(err, redis.Nil) {
		return Minutes{}, fmt.Errorf("queue: read minutes: stats:since: %w", err)
	}
	for i, h := range hashes {
		vals, err := h.Result()
		if err != nil {
			return Minutes{}, fmt.Errorf("queue: read minutes: %w", err)
		}
		for _, f := range out.Counts[i].fields() {
			if s, ok := vals[f.name]; ok {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return Minutes{}, fmt.Errorf("queue: read minutes: field %s: %w", f.name, err)
				}
				*f.v = v
			}
		}
	}
	return out, nil
}
