package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stats is a snapshot of the queue for operators (postalctl prints it).
type Stats struct {
	Streams  []StreamStats `json:"streams"`
	Retry    RetryStats    `json:"retry"`
	Dead     int64         `json:"dead_letters"`
	Inflight int64         `json:"inflight"`
}

// Stream returns the stats of kind's stream; ok is false when Inspect did
// not report it.
func (s Stats) Stream(kind Kind) (st StreamStats, ok bool) {
	for _, x := range s.Streams {
		if x.Kind == kind {
			return x, true
		}
	}
	return StreamStats{}, false
}

// StreamStats describes one stream and its consumer group.
type StreamStats struct {
	Kind Kind `json:"kind"`
	// Length counts entries in the stream: undelivered plus pending.
	Length int64 `json:"length"`
	// Pending counts entries delivered and not yet acked.
	Pending int64 `json:"pending"`
	// Lag counts entries not yet delivered (Length - Pending).
	Lag int64 `json:"lag"`
	// GroupExists is false when the group is missing (Redis lost it); the
	// next Read or Claim re-creates it.
	GroupExists bool            `json:"group_exists"`
	Consumers   []ConsumerStats `json:"consumers"`
}

// ConsumerStats describes one consumer of a group.
type ConsumerStats struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	// IdleMS is the time since the consumer last read or claimed, in ms.
	IdleMS int64 `json:"idle_ms"`
}

// RetryStats describes the retry set.
type RetryStats struct {
	Size int64 `json:"size"`
	// NextDue is when the earliest member is due; nil when the set is empty.
	NextDue *time.Time `json:"next_due,omitempty"`
}

// Inspect returns a snapshot of every stream, the retry set, the dead
// stream and the inflight hash, read in one round trip (not atomically). A
// missing stream or group reads as empty. It returns a wrapped error when
// Redis fails.
func (q *Queue) Inspect(ctx context.Context) (Stats, error) {
	type kindCmds struct {
		xlen      *redis.IntCmd
		groups    *redis.XInfoGroupsCmd
		consumers *redis.XInfoConsumersCmd
	}
	var (
		perKind  []kindCmds
		retryN   *redis.IntCmd
		first    *redis.ZSliceCmd
		deadN    *redis.IntCmd
		inflight *redis.IntCmd
	)
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range Kinds() {
			s := q.stream(k)
			perKind = append(perKind, kindCmds{
				xlen:      p.XLen(ctx, s),
				groups:    p.XInfoGroups(ctx, s),
				consumers: p.XInfoConsumers(ctx, s, q.group),
			})
		}
		retryN = p.ZCard(ctx, q.retry)
		first = p.ZRangeWithScores(ctx, q.retry, 0, 0)
		deadN = p.XLen(ctx, q.dead)
		inflight = p.HLen(ctx, q.inflight)
		return nil
	})
	// XINFO on a missing stream or group fails; that reads as empty.
	if err != nil && !isMissing(err) {
		return Stats{}, fmt.Errorf("queue: inspect: %w", err)
	}
	var st Stats
	for i, k := range Kinds() {
		c := perKind[i]
		ss := StreamStats{Kind: k, Consumers: []ConsumerStats{}}
		if err := c.xlen.Err(); err != nil {
			return Stats{}, fmt.Errorf("queue: inspect %s: %w", k, err)
		}
		ss.Length = c.xlen.Val()
		if groups, err := c.groups.Result(); err == nil {
			for _, g := range groups {
				if g.Name == q.group {
					ss.GroupExists = true
					ss.Pending = g.Pending
				}
			}
		} else if !isMissing(err) {
			return Stats{}, fmt.Errorf("queue: inspect %s groups: %w", k, err)
		}
		if consumers, err := c.consumers.Result(); err == nil {
			for _, cs := range consumers {
				ss.Consumers = append(ss.Consumers, ConsumerStats{Name: cs.Name, Pending: cs.Pending, IdleMS: cs.Idle.Milliseconds()})
			}
		} else if !isMissing(err) {
			return Stats{}, fmt.Errorf("queue: inspect %s consumers: %w", k, err)
		}
		ss.Lag = max(ss.Length-ss.Pending, 0)
		st.Streams = append(st.Streams, ss)
	}
	for _, c := range []*redis.IntCmd{retryN, deadN, inflight} {
		if err := c.Err(); err != nil {
			return Stats{}, fmt.Errorf("queue: inspect: %w", err)
		}
	}
	st.Retry.Size = retryN.Val()
	if zs, err := first.Result(); err != nil {
		return Stats{}, fmt.Errorf("queue: inspect retry: %w", err)
	} else if len(zs) > 0 {
		due := time.UnixMilli(int64(zs[0].Score))
		st.Retry.NextDue = &due
	}
	st.Dead = deadN.Val()
	st.Inflight = inflight.Val()
	return st, nil
}

// isMissing reports whether err is Redis saying a stream or group does not
// exist.
func isMissing(err error) bool {
	return isNoGroup(err) || redis.HasErrorPrefix(err, "no such key")
}

// DeadLetter is an entry given up on.
type DeadLetter struct {
	StreamID string    `json:"stream_id"`
	Kind     Kind      `json:"kind"`
	Job      Job       `json:"job"`
	Count    int64     `json:"count"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
}

// DeadLetters returns up to limit dead letters, newest first (limit <= 0: 100).
// It returns a wrapped error when Redis fails.
func (q *Queue) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	msgs, err := q.c.XRevRangeN(ctx, q.dead, "+", "-", int64(limit)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("queue: dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { s, _ := m.Values[k].(string); return s }
		dl := DeadLetter{StreamID: m.ID, Kind: Kind(str("kind")), Reason: str("reason")}
		dl.Job.ID, _ = strconv.ParseInt(str("id"), 10, 64)
		dl.Job.Domain = str("domain")
		dl.Count, _ = strconv.ParseInt(str("count"), 10, 64)
		if ms, err := strconv.ParseInt(str("time"), 10, 64); err == nil {
			dl.Time = time.UnixMilli(ms)
		}
		out = append(out, dl)
	}
	return out, nil
}

// PruneConsumers deletes the consumers of kind's group that have no pending
// entries and have been idle for at least idle (consumer names include a
// process identity, so every restart leaves old ones behind). The check and
// the deletion run in one script, so a consumer that reads meanwhile is
// never deleted with entries pending. It returns how many it deleted, or a
// wrapped error when Redis fails.
func (q *Queue) PruneConsumers(ctx context.Context, kind Kind, idle time.Duration) (int, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	n, err := q.scripts.prune.Run(ctx, q.c, []string{q.stream(kind)}, q.group, max(idle.Milliseconds(), 0)).Int()
	if isMissing(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("queue: prune %s consumers: %w", kind, err)
	}
	return n, nil
}

// Consumers lists the consumers of kind's group with their pending counts
// and idle times (XINFO CONSUMERS). A missing stream or group lists none.
// It returns a wrapped error when Redis fails.
func (q *Queue) Consumers(ctx context.Context, kind Kind) ([]ConsumerStats, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	cs, err := q.c.XInfoConsumers(ctx, q.stream(kind), q.group).Result()
	if isMissing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: consumers of %s: %w", kind, err)
	}
	out := make([]ConsumerStats, len(cs))
	for i, c := range cs {
		out[i] = ConsumerStats{Name: c.Name, Pending: c.Pending, IdleMS: c.Idle.Milliseconds()}
	}
	return out, nil
}

// RetryBucket counts retry-set entries due before Due (and after the
// previous bucket's Due); the last bucket of RetryShape has a zero Due and
// counts everything later.
type RetryBucket struct {
	Due   time.Time `json:"due,omitzero"`
	Count int64     `json:"count"`
}

// RetryShape counts the retry set by due time: one bucket per bound in
// within (ascending offsets from now; an entry already due falls in the
// first), then one for everything later. It reads with ZCOUNT in one round
// trip and returns a wrapped error when Redis fails.
func (q *Queue) RetryShape(ctx context.Context, now time.Time, within []time.Duration) ([]RetryBucket, error) {
	cmds := make([]*redis.IntCmd, 0, len(within)+1)
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		lo := "-inf"
		for _, d := range within {
			hi := fmt.Sprint(unixMS(now.Add(d)))
			cmds = append(cmds, p.ZCount(ctx, q.retry, lo, hi))
			lo = "(" + hi
		}
		cmds = append(cmds, p.ZCount(ctx, q.retry, lo, "+inf"))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: retry shape: %w", err)
	}
	out := make([]RetryBucket, len(cmds))
	for i, c := range cmds {
		out[i].Count = c.Val()
		if i < len(within) {
			out[i].Due = now.Add(within[i])
		}
	}
	return out, nil
}

// RequeueDead gives dead letters another round: for each, atomically, a new
// entry on its kind's stream (delivery count starting again), its inflight
// mark, and the removal of the dead letter. The caller chooses which letters
// deserve it (those whose SQL row still exists). It returns how many were
// requeued; on error none of the failed transaction's letters were.
func (q *Queue) RequeueDead(ctx context.Context, letters ...DeadLetter) (int, error) {
	n := 0
	for _, d := range letters {
		if err := checkKind(d.Kind); err != nil {
			return n, err
		}
		now := unixMS(q.now())
		_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.XAdd(ctx, &redis.XAddArgs{Stream: q.stream(d.Kind), Values: []any{"id", d.Job.ID, "domain", d.Job.Domain}})
			p.HSet(ctx, q.inflight, inflightField(d.Kind, d.Job.ID), now)
			p.XDel(ctx, q.dead, d.StreamID)
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("queue: requeue dead letter %s: %w", d.StreamID, err)
		}
		q.metrics.add(cEnqueued, d.Kind, 1)
		n++
	}
	return n, nil
}
