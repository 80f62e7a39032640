package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/redisconn"
)

// Kind names a stream.
type Kind string

// The streams.
const (
	Outgoing Kind = "outgoing"
	Incoming Kind = "incoming"
	Webhooks Kind = "webhooks"
)

// Kinds returns every Kind, in a fixed order.
func Kinds() []Kind { return []Kind{Outgoing, Incoming, Webhooks} }

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	switch k {
	case Outgoing, Incoming, Webhooks:
		return true
	}
	return false
}

// Job is what an entry carries: the SQL row to work on.
type Job struct {
	// ID is a queued-message id (or a webhook-request id for Webhooks).
	ID int64 `json:"id"`
	// Domain is the destination domain, used to batch work; may be empty.
	Domain string `json:"domain,omitempty"`
}

// Delivery is an entry handed to a consumer.
type Delivery struct {
	// StreamID is the entry's id in its stream; Ack and Retry need it.
	StreamID string `json:"stream_id"`
	Kind     Kind   `json:"kind"`
	Job      Job    `json:"job"`
	// Count is how many times the entry has been delivered, this time
	// included: 1 for a fresh Read.
	Count int64 `json:"count"`
}

// Defaults for Options.
const (
	DefaultGroup         = "workers"
	DefaultMaxDeliveries = 10
	DefaultDeadMaxLen    = 10000
)

// Options configures a Queue.
type Options struct {
	// Client is required.
	Client redis.UniversalClient
	// Keys names the keys; required.
	Keys redisconn.Keys
	// Group is the consumer group of every stream; default "workers".
	Group string
	// MaxDeliveries is how many deliveries an entry gets before Claim
	// declares it dead; default 10.
	MaxDeliveries int64
	// DeadMaxLen caps the dead stream (approximately); default 10000.
	DeadMaxLen int64
	// Log receives recoveries and anomalies; nil discards.
	Log *slog.Logger
	// Registerer, when set, gets the queue's counters.
	Registerer prometheus.Registerer
	// Now is the clock for inflight and dead-letter timestamps; default time.Now.
	Now func() time.Time
}

// Queue sends and receives dispatch entries. It is safe for concurrent use.
type Queue struct {
	c        redis.UniversalClient
	keys     redisconn.Keys
	group    string
	maxDel   int64
	deadLen  int64
	log      *slog.Logger
	now      func() time.Time
	scripts  scripts
	metrics  *metrics
	retry    string
	inflight string
	dead     string
}

// New returns a Queue. It does not contact Redis; call Init before the first
// Read (Read and Claim also call it by themselves when the group is missing).
func New(o Options) *Queue {
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = DefaultMaxDeliveries
	}
	if o.DeadMaxLen <= 0 {
		o.DeadMaxLen = DefaultDeadMaxLen
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	q := &Queue{
		c:        o.Client,
		keys:     o.Keys,
		group:    o.Group,
		maxDel:   o.MaxDeliveries,
		deadLen:  o.DeadMaxLen,
		log:      o.Log.With("component", "queue"),
		now:      o.Now,
		scripts:  newScripts(),
		retry:    o.Keys.Key("retry"),
		inflight: o.Keys.Key("inflight"),
		dead:     o.Keys.Key("dead"),
	}
	q.metrics = newMetrics(o.Registerer, q.log)
	return q
}

// Group returns the consumer group name.
func (q *Queue) Group() string { return q.group }

func (q *Queue) stream(k Kind) string { return q.keys.Key("stream", string(k)) }

func inflightField(k Kind, id int64) string {
	return string(k) + ":" + strconv.FormatInt(id, 10)
}

func retryMember(k Kind, j Job) string {
	return string(k) + "|" + strconv.FormatInt(j.ID, 10) + "|" + j.Domain
}

func unixMS(t time.Time) int64 { return t.UnixMilli() }

func checkKind(k Kind) error {
	if !k.Valid() {
		return fmt.Errorf("queue: unknown kind %q", k)
	}
	return nil
}

// isNoGroup reports whether err says the stream or its group does not exist.
func isNoGroup(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

// Init creates every stream and its consumer group (at "0", so entries added
// before the group existed are delivered). Existing groups are left alone.
// It returns a wrapped error when Redis fails.
func (q *Queue) Init(ctx context.Context) error {
	cmds, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range Kinds() {
			p.XGroupCreateMkStream(ctx, q.stream(k), q.group, "0")
		}
		return nil
	})
	if err == nil {
		return nil
	}
	for i, cmd := range cmds {
		if e := cmd.Err(); e != nil && !redis.HasErrorPrefix(e, "BUSYGROUP") {
			return fmt.Errorf("queue: create group %s on %s: %w", q.group, Kinds()[i], e)
		}
	}
	if len(cmds) == 0 {
		return fmt.Errorf("queue: create groups: %w", err)
	}
	return nil
}

// Enqueue adds one entry per job to kind's stream and marks each id
// inflight, atomically and in one round trip whatever the number of jobs.
// Zero jobs is a no-op. It returns a wrapped error when Redis fails, in
// which case no job was added.
func (q *Queue) Enqueue(ctx context.Context, kind Kind, jobs ...Job) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	stream := q.stream(kind)
	now := unixMS(q.now())
	fields := make([]any, 0, 2*len(jobs))
	_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, j := range jobs {
			p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", j.ID, "domain", j.Domain}})
			fields = append(fields, inflightField(kind, j.ID), now)
		}
		p.HSet(ctx, q.inflight, fields...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: enqueue %d %s jobs: %w", len(jobs), kind, err)
	}
	q.metrics.add(cEnqueued, kind, len(jobs))
	return nil
}

// Schedule puts jobs in the retry set, due at due, and marks them inflight,
// atomically in one round trip. A job already in the retry set gets the new
// due time. Zero jobs is a no-op. It returns a wrapped error when Redis fails.
func (q *Queue) Schedule(ctx context.Context, kind Kind, due time.Time, jobs ...Job) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	score := float64(unixMS(due))
	now := unixMS(q.now())
	members := make([]redis.Z, 0, len(jobs))
	fields := make([]any, 0, 2*len(jobs))
	for _, j := range jobs {
		members = append(members, redis.Z{Score: score, Member: retryMember(kind, j)})
		fields = append(fields, inflightField(kind, j.ID), now)
	}
	_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, q.retry, members...)
		p.HSet(ctx, q.inflight, fields...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: schedule %d %s jobs: %w", len(jobs), kind, err)
	}
	q.metrics.add(cRetried, kind, len(jobs))
	return nil
}

// noBlock makes go-redis send XREADGROUP without BLOCK (a zero Block would
// send BLOCK 0, which waits forever).
const noBlock = -1

// Read returns up to limit new entries of kind for consumer, waiting at most
// block for the first one (block <= 0: not at all). It never blocks without
// bound. It returns nil, nil when nothing arrived in time, and a wrapped
// error when Redis fails. A missing stream or group is re-created once.
func (q *Queue) Read(ctx context.Context, kind Kind, consumer string, limit int, block time.Duration) ([]Delivery, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("queue: read %s: limit %d must be positive", kind, limit)
	}
	if consumer == "" {
		return nil, fmt.Errorf("queue: read %s: empty consumer name", kind)
	}
	if block <= 0 {
		block = noBlock
	} else if block < time.Millisecond {
		block = time.Millisecond // BLOCK 0 would mean forever
	}
	args := &redis.XReadGroupArgs{
		Group:    q.group,
		Consumer: consumer,
		Streams:  []string{q.stream(kind), ">"},
		Count:    int64(limit),
		Block:    block,
	}
	res, err := q.c.XReadGroup(ctx, args).Result()
	if isNoGroup(err) {
		q.log.Warn("stream or group missing; re-creating", "queue", string(kind))
		if err := q.Init(ctx); err != nil {
			return nil, fmt.Errorf("queue: read %s: %w", kind, err)
		}
		res, err = q.c.XReadGroup(ctx, args).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", kind, err)
	}
	var out []Delivery
	var bad []redis.XMessage
	for _, s := range res {
		for _, m := range s.Messages {
			j, ok := parseJob(m.Values)
			if !ok {
				bad = append(bad, m)
				continue
			}
			out = append(out, Delivery{StreamID: m.ID, Kind: kind, Job: j, Count: 1})
		}
	}
	if len(bad) > 0 {
		if err := q.discardMalformed(ctx, kind, bad); err != nil {
			return out, err
		}
	}
	q.metrics.add(cRead, kind, len(out))
	return out, nil
}

func parseJob(v map[string]any) (Job, bool) {
	s, _ := v["id"].(string)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return Job{}, false
	}
	d, _ := v["domain"].(string)
	return Job{ID: id, Domain: d}, true
}

// discardMalformed moves entries that carry no job id to the dead stream and
// removes them from the stream: nobody could ever process them.
func (q *Queue) discardMalformed(ctx context.Context, kind Kind, bad []redis.XMessage) error {
	stream := q.stream(kind)
	ids := make([]string, len(bad))
	now := unixMS(q.now())
	_, err := q.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range bad {
			ids[i] = m.ID
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: q.dead, MaxLen: q.deadLen, Approx: true,
				Values: []any{"kind", string(kind), "id", fmt.Sprint(m.Values["id"]), "domain", "", "count", 1,
					"reason", "malformed entry " + m.ID, "time", now},
			})
		}
		p.XAck(ctx, stream, q.group, ids...)
		p.XDel(ctx, stream, ids...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: discard %d malformed %s entries: %w", len(bad), kind, err)
	}
	q.log.Error("malformed entries moved to dead letters", "queue", string(kind), "ids", ids)
	return nil
}

// Ack removes delivered entries of kind: XACK, XDEL and their inflight
// fields, in one script run (one round trip) for any number. Acking an entry
// that is no longer pending is harmless. Every delivery must be of kind. It
// returns a wrapped error when Redis fails, in which case nothing changed.
func (q *Queue) Ack(ctx context.Context, kind Kind, ds ...Delivery) error {
	if len(ds) == 0 {
		return checkKind(kind)
	}
	keys, args, err := q.ackArgs(kind, ds)
	if err != nil {
		return err
	}
	if err := q.scripts.ack.Run(ctx, q.c, keys, args...).Err(); err != nil {
		return fmt.Errorf("queue: ack %d %s entries: %w", len(ds), kind, err)
	}
	q.metrics.add(cAcked, kind, len(ds))
	return nil
}

// ackArgs returns the ack script's keys and arguments for ds.
func (q *Queue) ackArgs(kind Kind, ds []Delivery) ([]string, []any, error) {
	if err := checkKind(kind); err != nil {
		return nil, nil, err
	}
	args := make([]any, 0, 2+2*len(ds))
	args = append(args, q.group, string(kind))
	for _, d := range ds {
		if d.Kind != kind {
			return nil, nil, fmt.Errorf("queue: ack %s: delivery %s is of kind %q", kind, d.StreamID, d.Kind)
		}
		args = append(args, d.StreamID, strconv.FormatInt(d.Job.ID, 10))
	}
	return []string{q.stream(kind), q.inflight}, args, nil
}

// Retry atomically removes d from its stream (XACK + XDEL) and puts its job
// in the retry set due at due; the inflight field stays. It returns a
// wrapped error when Redis fails, in which case nothing changed.
func (q *Queue) Retry(ctx context.Context, kind Kind, d Delivery, due time.Time) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if d.Kind != kind {
		return fmt.Errorf("queue: retry %s: delivery %s is of kind %q", kind, d.StreamID, d.Kind)
	}
	err := q.scripts.retry.Run(ctx, q.c,
		[]string{q.stream(kind), q.retry, q.inflight},
		q.group, d.StreamID, unixMS(due), retryMember(kind, d.Job), inflightField(kind, d.Job.ID), unixMS(q.now()),
	).Err()
	if err != nil {
		return fmt.Errorf("queue: retry %s entry %s: %w", kind, d.StreamID, err)
	}
	q.metrics.add(cRetried, kind, 1)
	return nil
}

// DefaultMoveMax is how many members MoveDue moves when limit <= 0.
const DefaultMoveMax = 1000

// MoveDue moves up to limit retry members due at or before now to their
// streams, in one script: each member is added to its stream and removed
// from the retry set together, so concurrent callers never move a member
// twice and never lose one. A member naming an unknown kind goes to the dead
// stream. It returns how many members it took from the retry set, or a
// wrapped error when Redis fails (nothing moved).
func (q *Queue) MoveDue(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = DefaultMoveMax
	}
	keys := []string{q.retry, q.inflight, q.dead}
	args := []any{unixMS(now), limit, q.deadLen, unixMS(q.now())}
	for _, k := range Kinds() {
		keys = append(keys, q.stream(k))
		args = append(args, string(k))
	}
	n, err := q.scripts.moveDue.Run(ctx, q.c, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("queue: move due retries: %w", err)
	}
	q.metrics.addMoved(n)
	return n, nil
}

// missingChunk is how many fields one HMGET asks for.
const missingChunk = 1000

// Missing returns the ids (in the given order) that have no inflight field
// for kind: they are in no stream, pending list or retry set. It asks in
// chunks of 1000, all in one round trip. It returns a wrapped error when
// Redis fails.
func (q *Queue) Missing(ctx context.Context, kind Kind, ids []int64) ([]int64, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var cmds []*redis.SliceCmd
	_, err := q.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(ids); start += missingChunk {
			chunk := ids[start:min(start+missingChunk, len(ids))]
			fields := make([]string, len(chunk))
			for i, id := range chunk {
				fields[i] = inflightField(kind, id)
			}
			cmds = append(cmds, p.HMGet(ctx, q.inflight, fields...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: check %d %s ids inflight: %w", len(ids), kind, err)
	}
	var missing []int64
	for c, cmd := range cmds {
		for i, v := range cmd.Val() {
			if v == nil {
				missing = append(missing, ids[c*missingChunk+i])
			}
		}
	}
	return missing, nil
}

// Scope is the scope of the SQL rows (store.ScopeOutgoing,
// store.ScopeIncoming) whose work kind's stream carries, "" for a stream
// that carries no queued messages (Webhooks). Together with KindOfScope it
// is the one mapping between SQL scopes and streams.
func (k Kind) Scope() string {
	switch k {
	case Outgoing:
		return "outgoing"
	case Incoming:
		return "incoming"
	}
	return ""
}

// KindOfScope returns the stream that carries queued messages of scope,
// and false for an unknown scope.
func KindOfScope(scope string) (Kind, bool) {
	switch scope {
	case "outgoing":
		return Outgoing, true
	case "incoming":
		return Incoming, true
	}
	return "", false
}
