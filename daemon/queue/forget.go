package queue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Forgotten reports what Forget removed.
type Forgotten struct {
	// Entries are stream entries deleted (ready or pending).
	Entries int `json:"entries"`
	// Retries are retry-set members removed.
	Retries int `json:"retries"`
	// Inflight are inflight fields removed.
	Inflight int `json:"inflight"`
}

// forgetScanPage is how many stream entries one XRANGE reads.
const forgetScanPage = 1000

// MaxForgetScan caps the stream entries Forget reads per kind.
const MaxForgetScan = 1_000_000

// Forget removes every trace of jobs of kind from Redis, for rows an
// operator dropped from SQL: their stream entries (found by reading the
// stream, at most MaxForgetScan entries; a pending entry is acked as well),
// their retry-set members and their inflight fields. An entry it misses (the
// stream is longer than the scan, or it was added meanwhile) is harmless:
// the worker that reads it finds the row gone and acks it. It returns a
// wrapped error when Redis fails; what was removed before stays removed.
func (q *Queue) Forget(ctx context.Context, kind Kind, jobs ...Job) (Forgotten, error) {
	var out Forgotten
	if err := checkKind(kind); err != nil {
		return out, err
	}
	if len(jobs) == 0 {
		return out, nil
	}
	want := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		want[strconv.FormatInt(j.ID, 10)] = true
	}
	stream := q.stream(kind)
	start := "-"
	for scanned := 0; scanned < MaxForgetScan; {
		msgs, err := q.c.XRangeN(ctx, stream, start, "+", forgetScanPage).Result()
		if err != nil {
			return out, fmt.Errorf("queue: forget %s: read stream: %w", kind, err)
		}
		var ids []string
		for _, m := range msgs {
			if v, ok := m.Values["id"].(string); ok && want[v] {
				ids = append(ids, m.ID)
			}
		}
		if len(ids) > 0 {
			var del *redis.IntCmd
			if _, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.XAck(ctx, stream, q.group, ids...)
				del = p.XDel(ctx, stream, ids...)
				return nil
			}); err != nil {
				return out, fmt.Errorf("queue: forget %s: delete entries: %w", kind, err)
			}
			out.Entries += int(del.Val())
		}
		scanned += len(msgs)
		if len(msgs) < forgetScanPage {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	members := make([]any, 0, 2*len(jobs))
	fields := make([]string, 0, len(jobs))
	for _, j := range jobs {
		members = append(members, retryMember(kind, j))
		if j.Domain != "" {
			members = append(members, retryMember(kind, Job{ID: j.ID}))
		}
		fields = append(fields, inflightField(kind, j.ID))
	}
	var zrem, hdel *redis.IntCmd
	if _, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		zrem = p.ZRem(ctx, q.retry, members...)
		hdel = p.HDel(ctx, q.inflight, fields...)
		return nil
	}); err != nil {
		return out, fmt.Errorf("queue: forget %s: retry set and inflight: %w", kind, err)
	}
	out.Retries, out.Inflight = int(zrem.Val()), int(hdel.Val())
	return out, nil
}

// DropDead deletes dead letters from the dead stream. It returns how many
// were deleted, and a wrapped error when Redis fails.
func (q *Queue) DropDead(ctx context.Context, letters ...DeadLetter) (int, error) {
	if len(letters) == 0 {
		return 0, nil
	}
	ids := make([]string, len(letters))
	for i, d := range letters {
		ids[i] = d.StreamID
	}
	n, err := q.c.XDel(ctx, q.dead, ids...).Result()
	if err != nil {
		return 0, fmt.Errorf("queue: drop %d dead letters: %w", len(letters), err)
	}
	return int(n), nil
}
