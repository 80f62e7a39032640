package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultClaimMax is how many entries Claim takes when limit <= 0.
const DefaultClaimMax = 100

// Claim takes over up to limit entries of kind that have been pending, with
// any consumer, for at least minIdle: typically entries of a consumer that
// died. Each is either handed to consumer (claimed, Count = deliveries so
// far + 1) or, when it was already delivered MaxDeliveries times, moved to
// the dead stream, acked, deleted and dropped from inflight (dead, Count =
// deliveries so far); the caller marks dead rows failed in SQL. All of this
// happens in one script run. A missing stream or group is re-created once.
// It returns a wrapped error when Redis fails, in which case nothing changed.
func (q *Queue) Claim(ctx context.Context, kind Kind, consumer string, minIdle time.Duration, limit int) (claimed, dead []Delivery, err error) {
	return q.claim(ctx, kind, consumer, "", minIdle, limit)
}

// ClaimFrom is Claim restricted to the entries pending with the consumer
// from, whatever their idle time: it takes over the work of a consumer
// whose process is known to be dead (no heartbeat), without waiting for
// the visibility timeout. Deliveries are counted, and dead-lettered, as
// Claim does.
func (q *Queue) ClaimFrom(ctx context.Context, kind Kind, from, consumer string, limit int) (claimed, dead []Delivery, err error) {
	if from == "" {
		return nil, nil, fmt.Errorf("queue: claim %s: empty consumer to claim from", kind)
	}
	return q.claim(ctx, kind, consumer, from, 0, limit)
}

func (q *Queue) claim(ctx context.Context, kind Kind, consumer, from string, minIdle time.Duration, limit int) (claimed, dead []Delivery, err error) {
	if err := checkKind(kind); err != nil {
		return nil, nil, err
	}
	if consumer == "" {
		return nil, nil, fmt.Errorf("queue: claim %s: empty consumer name", kind)
	}
	if limit <= 0 {
		limit = DefaultClaimMax
	}
	keys := []string{q.stream(kind), q.dead, q.inflight}
	args := []any{q.group, consumer, string(kind), max(minIdle.Milliseconds(), 0), limit, q.maxDel, q.deadLen, unixMS(q.now())}
	if from != "" {
		args = append(args, from)
	}
	res, err := q.scripts.claim.Run(ctx, q.c, keys, args...).Slice()
	if isNoGroup(err) {
		q.log.Warn("stream or group missing; re-creating", "queue", string(kind))
		if err := q.Init(ctx); err != nil {
			return nil, nil, fmt.Errorf("queue: claim %s: %w", kind, err)
		}
		res, err = q.scripts.claim.Run(ctx, q.c, keys, args...).Slice()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("queue: claim %s: %w", kind, err)
	}
	for _, r := range res {
		d, isDead, err := parseClaimRow(kind, r)
		if err != nil {
			return claimed, dead, fmt.Errorf("queue: claim %s: %w", kind, err)
		}
		switch {
		case !isDead:
			claimed = append(claimed, d)
		case d.Job.ID == 0:
			q.log.Error("malformed entry moved to dead letters", "queue", string(kind), "stream_id", d.StreamID)
		default:
			q.log.Warn("entry exceeded max deliveries", "queue", string(kind), "message_id", d.Job.ID, "count", d.Count)
			dead = append(dead, d)
		}
	}
	q.metrics.add(cClaimed, kind, len(claimed))
	q.metrics.add(cDead, kind, len(dead))
	return claimed, dead, nil
}

// parseClaimRow decodes one {stream id, job id, domain, count, dead} row.
func parseClaimRow(kind Kind, r any) (Delivery, bool, error) {
	row, ok := r.([]any)
	if !ok || len(row) != 5 {
		return Delivery{}, false, fmt.Errorf("unexpected script row %v", r)
	}
	sid, _ := row[0].(string)
	jid, _ := row[1].(string)
	dom, _ := row[2].(string)
	count, _ := row[3].(int64)
	isDead, _ := row[4].(int64)
	d := Delivery{StreamID: sid, Kind: kind, Job: Job{Domain: dom}, Count: count}
	if jid != "" {
		id, err := strconv.ParseInt(jid, 10, 64)
		if err != nil {
			return Delivery{}, false, fmt.Errorf("entry %s: job id %q: %w", sid, jid, err)
		}
		d.Job.ID = id
	}
	return d, isDead == 1, nil
}

// Touch resets the idle time of entries the consumer is still working on
// (XCLAIM to itself with JUSTID, which does not count as a delivery), so
// that live workers do not reclaim work that is merely slow. Entries
// already acknowledged are ignored. It returns a wrapped error when Redis
// fails.
func (q *Queue) Touch(ctx context.Context, kind Kind, consumer string, ds ...Delivery) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.StreamID
	}
	err := q.c.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.stream(kind), Group: q.group, Consumer: consumer,
		MinIdle: 0, Messages: ids}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("queue: touch %d %s entries: %w", len(ds), kind, err)
	}
	return nil
}
