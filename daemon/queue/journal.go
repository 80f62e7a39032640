package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// journalChunk caps the keys of one MGET or UNLINK.
const journalChunk = 500

// Journal is the sent-journal of one stream kind: a record per queued row
// whose work reached a point of no return (the receiving server answered
// 250 to the message's DATA) before the outcome committed in SQL. A worker
// that takes over a dead worker's row reads the record and commits the
// outcome it describes instead of doing the work a second time.
//
// Keys are "sent:<kind>:<id>" under the queue's prefix (one Cluster slot
// with the streams), each a string with a TTL. The value is opaque here:
// the writer (package outbound) encodes what it needs to rebuild the
// outcome and to tell its row from a later row with the same id.
//
// The journal is best effort by design: a record that could not be written,
// or that Redis lost (a restart without persistence, a failover before the
// replica had it), only brings back the at-least-once window the journal
// narrows; it never loses work, because a missing record means "do the work".
type Journal struct {
	q    *Queue
	kind Kind
	ttl  time.Duration
}

// Journal returns kind's sent-journal whose records live ttl, which must be
// longer than the time a dead worker's work can take to be reclaimed (the
// worker's visibility timeout). It does not contact Redis.
func (q *Queue) Journal(kind Kind, ttl time.Duration) (*Journal, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, errors.New("queue: journal ttl must be positive")
	}
	return &Journal{q: q, kind: kind, ttl: ttl}, nil
}

func (j *Journal) key(id int64) string {
	return j.q.keys.Key("sent", string(j.kind), strconv.FormatInt(id, 10))
}

// Record stores values[i] for ids[i] (replacing older records) with the
// journal's TTL, all in one round trip. It returns a wrapped error when
// Redis fails or the slices differ in length.
func (j *Journal) Record(ctx context.Context, ids []int64, values [][]byte) error {
	if len(ids) != len(values) {
		return fmt.Errorf("queue: journal %s: %d ids for %d values", j.kind, len(ids), len(values))
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := j.q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			p.Set(ctx, j.key(id), values[i], j.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: journal %d %s records: %w", len(ids), j.kind, err)
	}
	return nil
}

// Lookup returns the records of those ids that have one, in one round trip.
// It returns a wrapped error when Redis fails.
func (j *Journal) Lookup(ctx context.Context, ids []int64) (map[int64][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var cmds []*redis.SliceCmd
	_, err := j.q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(ids); start += journalChunk {
			chunk := ids[start:min(start+journalChunk, len(ids))]
			keys := make([]string, len(chunk))
			for i, id := range chunk {
				keys[i] = j.key(id)
			}
			cmds = append(cmds, p.MGet(ctx, keys...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: journal lookup of %d %s ids: %w", len(ids), j.kind, err)
	}
	var out map[int64][]byte
	for c, cmd := range cmds {
		for i, v := range cmd.Val() {
			s, ok := v.(string)
			if !ok {
				continue
			}
			if out == nil {
				out = map[int64][]byte{}
			}
			out[ids[c*journalChunk+i]] = []byte(s)
		}
	}
	return out, nil
}

// Forget deletes the records of ids (their outcomes are committed), in one
// round trip. Zero ids is a no-op. It returns a wrapped error when Redis
// fails; the records then expire with their TTL.
func (j *Journal) Forget(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := j.q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(ids); start += journalChunk {
			chunk := ids[start:min(start+journalChunk, len(ids))]
			keys := make([]string, len(chunk))
			for i, id := range chunk {
				keys[i] = j.key(id)
			}
			p.Unlink(ctx, keys...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: journal forget of %d %s ids: %w", len(ids), j.kind, err)
	}
	return nil
}
