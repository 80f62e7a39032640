package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StatusError is the delivery status of a row written when an outcome could
// not be recorded as the handler gave it (see CommitOutcomes). Postal uses
// the same status for deliveries that fire no webhook.
const StatusError = "Error"

// NewDelivery is a delivery row recorded with an outcome.
type NewDelivery struct {
	Status      string
	Details     string
	Output      string
	SentWithSSL bool
	LogID       string
	Time        float64 // seconds the attempt took
}

// Effects is the durable work an outcome causes besides its own rows. They
// are written in the outcome's transaction, only when the outcome applies
// (its owner still holds the queued row), so a worker that dies before the
// commit leaves none of them behind and one that lost its lock writes none.
type Effects struct {
	// Suppress adds (or refreshes) recipient suppressions.
	Suppress []NewSuppression
	// Unsuppress removes the server's suppression of each address.
	Unsuppress []Unsuppression
	// Bounces are new messages (DSNs) stored and queued like any accepted
	// submission; their queued rows are reported in Committed.Queued for
	// dispatch. When the outcome has a delivery row, " Bounce sent to
	// sender (see message <msg:ID>)." is appended to its details, and to the
	// "details" member of the Webhooks payloads that quote them.
	Bounces []Submission
	// Messages are new messages stored and queued like any accepted
	// submission (an incoming message's copies for its route's additional
	// endpoints); their queued rows are reported in Committed.Queued.
	Messages []Submission
	// Links mark original messages Bounced (see MarkBounced).
	Links []BounceLink
	// Webhooks are webhook requests, due now; their ids are reported in
	// Committed.Webhooks for dispatch.
	Webhooks []NewWebhookRequest
	// SendLimit, when set, reports the server's send volume after this
	// outcome; its events fire once per crossing (see SendLimit).
	SendLimit *SendLimit
	// Used names endpoints this outcome used: their last_used_at is set
	// to the commit time, one UPDATE per endpoint table for the whole
	// committed group.
	Used []EndpointRef
	// Inspection, when set, records the spam and virus inspection of the
	// outcome's message (see NewInspection).
	Inspection *NewInspection
}

// EndpointRef names one endpoint: its type (EndpointHTTP, EndpointSMTP,
// EndpointAddress) and its id in that type's table.
type EndpointRef struct {
	Type string
	ID   int64
}

// SendLimit is a server's outgoing volume over the last 60 minutes
// against its send_limit, with the webhook requests each crossing fires.
// At Volume >= 90 % of Limit, Approaching is written unless the server is
// already marked approaching since its volume was last below 90 %; at
// Volume >= Limit, Exceeded likewise; below 90 % both marks are cleared, so
// the next crossing fires again.
type SendLimit struct {
	ServerID              int64
	Volume, Limit         int64
	Approaching, Exceeded []NewWebhookRequest
}

// Unsuppression names a suppression entry to remove.
type Unsuppression struct {
	ServerID int64
	Address  string
}

func (e Effects) empty() bool {
	return len(e.Suppress) == 0 && len(e.Unsuppress) == 0 && len(e.Bounces) == 0 && len(e.Messages) == 0 && len(e.Links) == 0 &&
		len(e.Webhooks) == 0 && e.SendLimit == nil && len(e.Used) == 0 && e.Inspection == nil
}

// Outcome is the result of working on one claimed queued message: what
// happens to the queued row (deleted, or kept for a retry), to the message
// (status, details, hold) and the delivery row, plus its Effects. Build one
// with Drop, Sent, SoftFail, HardFail, Hold, Retry or Processed; the zero
// Outcome names no row and is never applied.
type Outcome struct {
	queuedID, messageID int64
	// serverID is the queued row's server, for statistics (0: uncounted).
	serverID   int64
	owner      string
	status     string
	details    string
	delivery   *NewDelivery
	retry      bool
	retryAfter time.Time
	// keepAttempts keeps a retried row's attempt count (a hold, not a try).
	keepAttempts bool
	held         bool
	holdExpiry   time.Time
	effects      Effects
}

func base(q *QueuedMessage) Outcome {
	return Outcome{queuedID: q.ID, messageID: q.MessageID, serverID: q.ServerID, owner: q.LockedBy}
}

// Drop finishes q's queued row and changes nothing else (its message is
// gone, or nothing is left to do).
func Drop(q *QueuedMessage) Outcome { return base(q) }

// Sent finishes q: the message is Sent, with d (status Sent) as its delivery.
func Sent(q *QueuedMessage, d NewDelivery) Outcome { return final(q, StatusSent, d) }

// HardFail finishes q: the message is HardFail, with d (status HardFail) as
// its delivery.
func HardFail(q *QueuedMessage, d NewDelivery) Outcome { return final(q, StatusHardFail, d) }

// Processed finishes q (a received bounce that was linked): the message is
// Processed, with a Processed delivery carrying details.
func Processed(q *QueuedMessage, details string) Outcome {
	return final(q, StatusProcessed, NewDelivery{Details: details})
}

func final(q *QueuedMessage, status string, d NewDelivery) Outcome {
	o := base(q)
	d.Status = status
	o.status, o.delivery = status, &d
	return o
}

// SoftFail keeps q for a retry at retryAfter (attempts + 1): the message is
// SoftFail, with d (status SoftFail) as its delivery.
func SoftFail(q *QueuedMessage, retryAfter time.Time, d NewDelivery) Outcome {
	o := final(q, StatusSoftFail, d)
	o.retry, o.retryAfter = true, retryAfter
	return o
}

// Hold finishes q's queued row and holds the message until expiry, with
// details as the message's details and on a Held delivery (postalctl
// message release queues it again).
func Hold(q *QueuedMessage, expiry time.Time, details string) Outcome {
	o := final(q, StatusHeld, NewDelivery{Details: details})
	o.held, o.holdExpiry, o.details = true, expiry, details
	return o
}

// HoldUntil holds the message as Hold does, but keeps q's queued row,
// unlocked and due at release, without counting an attempt: mail held by a
// send limit goes out once the window allows.
func HoldUntil(q *QueuedMessage, expiry, release time.Time, details string) Outcome {
	o := Hold(q, expiry, details)
	o.retry, o.retryAfter, o.keepAttempts = true, release, true
	return o
}

// Retry keeps q for another try at retryAfter (now when zero) without
// changing the message's status; details, when set, replace the message's
// details (an internal error, or why it waits).
func Retry(q *QueuedMessage, retryAfter time.Time, details string) Outcome {
	o := base(q)
	o.retry, o.retryAfter, o.details = true, retryAfter, details
	return o
}

// With returns o with e's effects added to those it has.
func (o Outcome) With(e Effects) Outcome {
	o.effects.Suppress = append(o.effects.Suppress, e.Suppress...)
	o.effects.Unsuppress = append(o.effects.Unsuppress, e.Unsuppress...)
	o.effects.Bounces = append(o.effects.Bounces, e.Bounces...)
	o.effects.Messages = append(o.effects.Messages, e.Messages...)
	o.effects.Links = append(o.effects.Links, e.Links...)
	o.effects.Webhooks = append(o.effects.Webhooks, e.Webhooks...)
	o.effects.Used = append(o.effects.Used, e.Used...)
	if e.SendLimit != nil {
		o.effects.SendLimit = e.SendLimit
	}
	if e.Inspection != nil {
		o.effects.Inspection = e.Inspection
	}
	return o
}

// QueuedID is the queued row the outcome is for.
func (o Outcome) QueuedID() int64 { return o.queuedID }

// MessageID is the message of the queued row.
func (o Outcome) MessageID() int64 { return o.messageID }

// Owner is the lock owner the outcome is guarded by.
func (o Outcome) Owner() string { return o.owner }

// Status is the message's new status ("" for none).
func (o Outcome) Status() string { return o.status }

// Details is the message's new details ("" for unchanged).
func (o Outcome) Details() string { return o.details }

// Delivery is a copy of the delivery row to record, nil for none.
func (o Outcome) Delivery() *NewDelivery {
	if o.delivery == nil {
		return nil
	}
	d := *o.delivery
	return &d
}

// Retries reports whether the queued row is kept for another try.
func (o Outcome) Retries() bool { return o.retry }

// RetryAfter is when a kept row is due again.
func (o Outcome) RetryAfter() time.Time { return o.retryAfter }

// Held reports whether the message is held.
func (o Outcome) Held() bool { return o.held }

// HoldExpiry is when a hold ends.
func (o Outcome) HoldExpiry() time.Time { return o.holdExpiry }

// Effects returns the outcome's effects.
func (o Outcome) Effects() Effects { return o.effects }

// fallback is what is recorded for o when o itself cannot be written:
// the queued row is finished (never retried: a Sent message must not be
// sent again), the message keeps Sent or becomes HardFail, and an Error
// delivery says why. It has no effects.
func (o Outcome) fallback(reason string) Outcome {
	f := base(&QueuedMessage{ID: o.queuedID, MessageID: o.messageID, ServerID: o.serverID, LockedBy: o.owner})
	reason = cleanReason(reason)
	f.status = StatusHardFail
	f.details = "The outcome of this attempt could not be recorded (" + reason + ")."
	if o.status == StatusSent {
		f.status = StatusSent
		f.details = "The message was sent, but the outcome could not be recorded (" + reason + ")."
	}
	f.delivery = &NewDelivery{Status: StatusError, Details: f.details}
	return f
}

// cleanReason makes an error text safe to store: valid UTF-8, no NUL or
// other control bytes, at most 200 bytes.
func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
		s = strings.ToValidUTF8(s, "")
	}
	return s
}

// Committed reports what CommitOutcomes recorded.
type Committed struct {
	// Applied[i] is true when outcome i (or its fallback) was recorded; false
	// when its owner no longer held the queued row, or when Failed[i] is set.
	Applied []bool
	// Fallback[i] is the reason outcome i was recorded by its fallback
	// (see CommitOutcomes), "" when it was recorded as given.
	Fallback []string
	// Failed[i] is set when nothing could be recorded for outcome i: its
	// row stays locked and its work is reclaimed later.
	Failed []error
	// Queued lists the queued rows created by Bounces and Messages effects; they need a
	// dispatch entry.
	Queued []Accepted
	// Webhooks lists the webhook_requests created; each needs an entry on
	// the webhooks stream.
	Webhooks []int64
	// Counts sums what the recorded outcomes added to the servers'
	// statistics (outcomes, holds, bounces, generated bounce messages).
	Counts StatCounts
}

// CommitOutcomes records outcomes and their effects in ONE transaction.
// Each outcome is guarded by its owner: one whose queued row is no longer
// locked by its Owner (lock lost, row gone) changes nothing and writes no
// effect. When that transaction fails (a row the database refuses), each
// outcome is recorded in a transaction of its own; one that still fails is
// recorded by its fallback (the queued row finished, the message Sent if it
// was sent and HardFail otherwise, an Error delivery row with the reason,
// no effects) so that delivered mail is never sent again. It returns an
// error, with nothing recorded, only when ctx ends before the fallback
// could start; per-outcome failures are in Committed.Failed.
func (s *Store) CommitOutcomes(ctx context.Context, outs []Outcome) (Committed, error) {
	c := Committed{Applied: make([]bool, len(outs)), Fallback: make([]string, len(outs)), Failed: make([]error, len(outs))}
	if len(outs) == 0 {
		return c, nil
	}
	batchErr := s.commitInto(ctx, outs, &c, 0)
	if batchErr == nil {
		return c, nil
	}
	if ctx.Err() != nil {
		return Committed{}, fmt.Errorf("record outcomes: %w", batchErr)
	}
	for i := range outs {
		err := batchErr
		if len(outs) > 1 {
			err = s.commitInto(ctx, outs[i:i+1], &c, i)
			if err == nil {
				continue
			}
		}
		reason := err.Error()
		if ferr := s.commitInto(ctx, []Outcome{outs[i].fallback(reason)}, &c, i); ferr != nil {
			c.Failed[i] = fmt.Errorf("record outcome of queued message %d: %w (fallback: %v)", outs[i].queuedID, err, ferr)
			continue
		}
		c.Fallback[i] = reason
	}
	return c, nil
}

// RecordOutcomes is CommitOutcomes for callers that dispatch nothing: it
// returns Applied, and an error when an outcome could not be recorded at
// all.
func (s *Store) RecordOutcomes(ctx context.Context, outs []Outcome) ([]bool, error) {
	c, err := s.CommitOutcomes(ctx, outs)
	if err != nil {
		return nil, err
	}
	return c.Applied, errors.Join(c.Failed...)
}

// commitInto records outs in one transaction; on success it sets
// c.Applied[at+i] and adds the new work to c. On PostgreSQL a batch whose
// effects allow it is recorded in two round trips (commitPipelined).
func (s *Store) commitInto(ctx context.Context, outs []Outcome, c *Committed, at int) error {
	now := s.now()
	applied := make([]bool, len(outs))
	var queued []Accepted
	var hooks []int64
	tl := tally{}
	var err error
	if s.dialect.driver == Postgres && pipelinable(outs) {
		hooks, err = s.commitPipelined(ctx, now, outs, applied, tl)
	} else {
		queued, hooks, err = s.commitTx(ctx, now, outs, applied, tl, s.dialect.driver == Postgres && batchable(outs))
	}
	if err != nil {
		return err
	}
	copy(c.Applied[at:], applied)
	c.Queued = append(c.Queued, queued...)
	c.Webhooks = append(c.Webhooks, hooks...)
	c.Counts = c.Counts.Add(tl.total())
	return nil
}

// commitTx records outs in one transaction of separate statements: with
// commitBatch when batch is set (PostgreSQL), else one outcome at a time
// (commitEach). It sets applied[i], adds the applied outcomes to tl and
// returns the queued rows and webhook requests the effects created.
func (s *Store) commitTx(ctx context.Context, now time.Time, outs []Outcome, applied []bool, tl tally, batch bool) ([]Accepted, []int64, error) {
	var queued []Accepted
	var hooks []int64
	err := s.inTx(ctx, func(t tx) error {
		// A retried transaction starts afresh.
		clear(applied)
		clear(tl)
		used := map[string][]int64{}
		var err error
		if batch {
			queued, hooks, err = commitBatch(ctx, t, now, outs, applied, tl, used)
		} else {
			queued, hooks, err = commitEach(ctx, t, now, outs, applied, tl, used)
		}
		if err != nil {
			return err
		}
		if err := markUsed(ctx, t, now.UnixMicro(), used); err != nil {
			return err
		}
		return tl.write(ctx, t, now)
	})
	if err != nil {
		clear(applied)
		clear(tl)
		return nil, nil, err
	}
	return queued, hooks, nil
}

// commitEach records outs inside t one by one with statements prepared for
// the transaction. It sets applied[i] and returns the queued rows and
// webhook requests the effects created.
func commitEach(ctx context.Context, t tx, now time.Time, outs []Outcome, applied []bool, tl tally,
	used map[string][]int64) ([]Accepted, []int64, error) {
	st, err := prepareOutcome(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	defer st.close()
	var queued []Accepted
	var hooks []int64
	for i, o := range outs {
		if o.queuedID == 0 {
			continue
		}
		var res sql.Result
		if o.retry {
			res, err = st.keep(ctx, now, o)
		} else {
			res, err = st.finish.ExecContext(ctx, o.queuedID, o.owner)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("queued message %d: %w", o.queuedID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		applied[i] = true
		q, h, err := settle(ctx, t, now.UnixMicro(), &o, tl, used)
		if err != nil {
			return nil, nil, err
		}
		queued, hooks = append(queued, q...), append(hooks, h...)
		if err := st.apply(ctx, now.UnixMicro(), o); err != nil {
			return nil, nil, err
		}
	}
	return queued, hooks, nil
}

// settle writes what an applied outcome adds beside its own rows: its
// count in the statistics, its effects, and the endpoints it used (in
// used, for markUsed). It returns the queued rows and webhook requests the
// effects created; it may append to o's delivery details.
func settle(ctx context.Context, t tx, now int64, o *Outcome, tl tally, used map[string][]int64) ([]Accepted, []int64, error) {
	tl.countOutcome(o.serverID, o)
	q, h, err := applyEffects(ctx, t, now, o, tl)
	if err != nil {
		return nil, nil, fmt.Errorf("effects of queued message %d: %w", o.queuedID, err)
	}
	for _, u := range o.effects.Used {
		if endpointTables[u.Type] != "" {
			used[u.Type] = append(used[u.Type], u.ID)
		}
	}
	return q, h, nil
}

// appendQueued appends the stored messages of accs that have a queued row.
func appendQueued(queued []Accepted, accs [][]Accepted) []Accepted {
	for _, acc := range accs {
		for _, a := range acc {
			if a.QueuedID != 0 {
				queued = append(queued, a)
			}
		}
	}
	return queued
}

// markUsed sets last_used_at of the endpoints in used (ids per type), one
// UPDATE per type.
func markUsed(ctx context.Context, t tx, now int64, used map[string][]int64) error {
	for _, st := range usedStatements(t.d, now, used) {
		if _, err := t.exec(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("mark endpoints used: %w", err)
		}
	}
	return nil
}

// usedStatements are markUsed's statements: one UPDATE per endpoint table
// named in used. On PostgreSQL the ids travel as one array, so the text is
// the same whatever their number (one cached statement per table).
func usedStatements(d dialect, now int64, used map[string][]int64) []statement {
	var out []statement
	for _, kind := range []string{EndpointHTTP, EndpointSMTP, EndpointAddress} {
		ids := used[kind]
		if len(ids) == 0 {
			continue
		}
		if d.driver == Postgres {
			out = append(out, statement{q: `UPDATE ` + endpointTables[kind] + ` SET last_used_at = ? WHERE id = ANY(?)`, args: []any{now, ids}})
			continue
		}
		out = append(out, statement{q: `UPDATE ` + endpointTables[kind] + ` SET last_used_at = ? WHERE id IN (` + placeholders(len(ids)) + `)`,
			args: append([]any{now}, int64Args(ids)...)})
	}
	return out
}

// applyEffects writes o's effects inside t and returns the queued rows and
// webhook requests it created. It may append to o's delivery details.
func applyEffects(ctx context.Context, t tx, now int64, o *Outcome, tl tally) ([]Accepted, []int64, error) {
	e := o.effects
	if e.empty() {
		return nil, nil, nil
	}
	if e.Inspection != nil {
		if err := recordInspection(ctx, t, o.messageID, e.Inspection); err != nil {
			return nil, nil, err
		}
	}
	var queued []Accepted
	if len(e.Bounces) > 0 {
		accs, err := insertSubmissions(ctx, t, now, e.Bounces, tl)
		if err != nil {
			return nil, nil, fmt.Errorf("bounce: %w", err)
		}
		queued = appendQueued(queued, accs)
		if o.delivery != nil && len(accs) > 0 && len(accs[0]) > 0 {
			d := *o.delivery
			d.Details += " Bounce sent to sender (see message <msg:" + strconv.FormatInt(accs[0][0].MessageID, 10) + ">)."
			e.Webhooks = withDetails(e.Webhooks, o.delivery.Details, d.Details)
			o.delivery = &d
		}
	}
	if len(e.Messages) > 0 {
		accs, err := insertSubmissions(ctx, t, now, e.Messages, tl)
		if err != nil {
			return nil, nil, fmt.Errorf("new messages: %w", err)
		}
		queued = appendQueued(queued, accs)
	}
	if err := addSuppressions(ctx, t, now, e.Suppress); err != nil {
		return nil, nil, err
	}
	for _, u := range e.Unsuppress {
		st := unsuppressStatement(u)
		if _, err := t.exec(ctx, st.q, st.args...); err != nil {
			return nil, nil, fmt.Errorf("unsuppress %s: %w", u.Address, err)
		}
	}
	for _, l := range e.Links {
		if err := markBounced(ctx, t, now, l); err != nil {
			return nil, nil, err
		}
	}
	var hooks []int64
	if sl := e.SendLimit; sl != nil && sl.Limit > 0 {
		ids, err := applySendLimit(ctx, t, now, sl)
		if err != nil {
			return nil, nil, err
		}
		hooks = append(hooks, ids...)
	}
	if len(e.Webhooks) > 0 {
		ids, err := insertWebhookRequests(ctx, t, now, e.Webhooks)
		if err != nil {
			return nil, nil, fmt.Errorf("webhook requests: %w", err)
		}
		hooks = append(hooks, ids...)
	}
	return queued, hooks, nil
}

// unsuppressStatement removes the suppression u names.
func unsuppressStatement(u Unsuppression) statement {
	return statement{q: `DELETE FROM suppressions WHERE server_id = ? AND type = ? AND address = ?`,
		args: []any{u.ServerID, SuppressionRecipient, strings.ToLower(strings.TrimSpace(u.Address))}}
}

// clearSendLimitSQL clears a server's (?) send limit crossing marks; below
// 90 % of the limit, so the next crossing fires again.
const clearSendLimitSQL = `UPDATE servers SET send_limit_approaching_at = NULL, send_limit_exceeded_at = NULL
			WHERE id = ? AND (send_limit_approaching_at IS NOT NULL OR send_limit_exceeded_at IS NOT NULL)`

// markSendLimitSQL sets column (a crossing mark) of a server to a time
// unless it is set: the arguments are the time and the server id. Only the
// outcome whose statement changed the row fires the crossing's events.
func markSendLimitSQL(column string) string {
	return `UPDATE servers SET ` + column + ` = ? WHERE id = ? AND ` + column + ` IS NULL`
}

// sendLimitCrossings returns the marks sl reaches, with the requests each
// fires.
func sendLimitCrossings(sl *SendLimit) []sendLimitCrossing {
	return []sendLimitCrossing{
		{"send_limit_approaching_at", sl.Approaching},
		{"send_limit_exceeded_at", sl.Exceeded},
	}[:crossed(sl)]
}

// sendLimitCrossing is one mark of a server's send limit (approaching or
// exceeded) and the requests its crossing fires.
type sendLimitCrossing struct {
	column string
	reqs   []NewWebhookRequest
}

// crossed is how many of the marks sl reaches: 0 below 90 % of the limit, 1
// (approaching) below the limit, 2 at or over it.
func crossed(sl *SendLimit) int {
	switch {
	case sl.Volume*10 < sl.Limit*9:
		return 0
	case sl.Volume < sl.Limit:
		return 1
	}
	return 2
}

// applySendLimit applies a SendLimit effect: it marks (or clears) the
// server's crossing stamps by compare-and-set and writes the requests of
// the crossings this outcome made.
func applySendLimit(ctx context.Context, t tx, now int64, sl *SendLimit) ([]int64, error) {
	if crossed(sl) == 0 {
		if _, err := t.exec(ctx, clearSendLimitSQL, sl.ServerID); err != nil {
			return nil, fmt.Errorf("clear send limit marks of server %d: %w", sl.ServerID, err)
		}
		return nil, nil
	}
	var ids []int64
	for _, c := range sendLimitCrossings(sl) {
		res, err := t.exec(ctx, markSendLimitSQL(c.column), now, sl.ServerID)
		if err != nil {
			return nil, fmt.Errorf("mark %s of server %d: %w", c.column, sl.ServerID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 || len(c.reqs) == 0 {
			continue
		}
		got, err := insertWebhookRequests(ctx, t, now, c.reqs)
		if err != nil {
			return nil, fmt.Errorf("send limit webhook requests: %w", err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// withDetails returns reqs with the "details" member of their JSON payloads
// changed from old to new where it is present (a delivery event quotes the
// delivery's details, which get the bounce's id only once it is stored).
// The payloads were encoded by encoding/json, as old and new are here.
func withDetails(reqs []NewWebhookRequest, old, new string) []NewWebhookRequest {
	o, err1 := json.Marshal(old)
	n, err2 := json.Marshal(new)
	if err1 != nil || err2 != nil {
		return reqs
	}
	from, to := `"details":`+string(o), `"details":`+string(n)
	out := make([]NewWebhookRequest, len(reqs))
	for i, r := range reqs {
		r.Payload = strings.Replace(r.Payload, from, to, 1)
		out[i] = r
	}
	return out
}

// batchable reports whether commitBatch may record outs: at least two
// outcomes, none marks another message Bounced (a Links effect writes
// message rows that another outcome of the batch may also write, so their
// order matters), and no queued row or message appears twice. It is used
// on PostgreSQL only, for batches commitPipelined cannot take (those that
// store bounces or other new messages): there each statement costs a round
// trip and a plan, while SQLite runs the per-outcome prepared statements in
// process, 10-20 % cheaper in CPU than compiling a batch's statements
// (BenchmarkHotPaths).
func batchable(outs []Outcome) bool {
	if len(outs) < 2 {
		return false
	}
	queued := make(map[int64]bool, len(outs))
	msgs := make(map[int64]bool, len(outs))
	for _, o := range outs {
		if o.queuedID == 0 {
			continue
		}
		if len(o.effects.Links) > 0 || queued[o.queuedID] || msgs[o.messageID] {
			return false
		}
		queued[o.queuedID], msgs[o.messageID] = true, true
	}
	return true
}

// maxBatchRows bounds the rows one multi-row statement names, well below
// both databases' limits on bound parameters (SQLite 32,766, PostgreSQL
// 65,535) for the widest row written this way.
const maxBatchRows = 200

// commitBatch records outs inside t as commitEach does, with the same result, in three statements per batch instead of
// three per outcome (PostgreSQL only): one DELETE ... USING unnest(ids,
// owners) ... RETURNING for the rows that finish, one UPDATE messages per
// distinct change (a batch of Sent outcomes is one), one INSERT deliveries
// ... SELECT FROM unnest(arrays). Each has one statement text whatever the
// batch size, so the driver's statement cache prepares it once per
// connection. Retries and effects are written per outcome, in order, as
// before. It sets applied[i] and returns the queued rows and webhook
// requests the effects created.
func commitBatch(ctx context.Context, t tx, now time.Time, outs []Outcome, applied []bool, tl tally,
	used map[string][]int64) ([]Accepted, []int64, error) {
	var (
		finishIDs []int64
		owners    []string
	)
	for _, o := range outs {
		if o.queuedID != 0 && !o.retry {
			finishIDs, owners = append(finishIDs, o.queuedID), append(owners, o.owner)
		}
	}
	gone := map[int64]bool{}
	if len(finishIDs) > 0 {
		rows, err := t.query(ctx, `DELETE FROM queued_messages q USING unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[])) AS f(id, owner)
			WHERE q.id = f.id AND q.locked_by = f.owner RETURNING q.id`, finishIDs, owners)
		if err != nil {
			return nil, nil, fmt.Errorf("finish queued messages: %w", err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("finish queued messages: %w", err)
			}
			gone[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, nil, fmt.Errorf("finish queued messages: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("finish queued messages: %w", err)
		}
	}
	var (
		st     *outcomeStmts
		queued []Accepted
		hooks  []int64
		done   = make([]Outcome, 0, len(outs))
	)
	defer func() {
		if st != nil {
			st.close()
		}
	}()
	for i, o := range outs {
		if o.queuedID == 0 {
			continue
		}
		if o.retry {
			if st == nil {
				var err error
				if st, err = prepareOutcome(ctx, t); err != nil {
					return nil, nil, err
				}
			}
			res, err := st.keep(ctx, now, o)
			if err != nil {
				return nil, nil, fmt.Errorf("queued message %d: %w", o.queuedID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
		} else if !gone[o.queuedID] {
			continue
		}
		applied[i] = true
		q, h, err := settle(ctx, t, now.UnixMicro(), &o, tl, used)
		if err != nil {
			return nil, nil, err
		}
		queued, hooks = append(queued, q...), append(hooks, h...)
		done = append(done, o)
	}
	if err := applyMany(ctx, t, now.UnixMicro(), done); err != nil {
		return nil, nil, err
	}
	return queued, hooks, nil
}

// messageChange is the change an outcome makes to its message row, as the
// arguments of the UPDATE in outcomeStmts.apply; outcomes with equal
// changes share one UPDATE.
type messageChange struct {
	status, details string
	held            int8 // 0 unchanged, 1 true, 2 false
	hold            bool
	holdExpiry      int64
	attempt         bool
}

func changeOf(o Outcome) (messageChange, bool) {
	if o.status == "" && o.details == "" && !o.held && o.delivery == nil {
		return messageChange{}, false
	}
	c := messageChange{status: o.status, details: truncate(o.details, maxDetails), hold: o.held, attempt: o.delivery != nil}
	switch {
	case o.held:
		c.held = 1
	case o.status == StatusSent || o.status == StatusSoftFail || o.status == StatusHardFail:
		c.held = 2
	}
	if !o.holdExpiry.IsZero() {
		c.holdExpiry = o.holdExpiry.UnixMicro()
	}
	return c, true
}

// applyMany is outcomeStmts.apply for many outcomes of distinct messages,
// in one UPDATE per distinct change and one INSERT of the delivery rows
// from arrays (PostgreSQL only).
func applyMany(ctx context.Context, t tx, now int64, outs []Outcome) error {
	var order []messageChange
	byChange := map[messageChange][]int64{}
	for _, o := range outs {
		c, ok := changeOf(o)
		if !ok {
			continue
		}
		if _, seen := byChange[c]; !seen {
			order = append(order, c)
		}
		byChange[c] = append(byChange[c], o.messageID)
	}
	for _, c := range order {
		var held, expiry, attempt any
		switch c.held {
		case 1:
			held = true
		case 2:
			held = false
		}
		if c.holdExpiry != 0 {
			expiry = c.holdExpiry
		}
		if c.attempt {
			attempt = now
		}
		ids := byChange[c]
		if _, err := t.exec(ctx, `UPDATE messages SET status = COALESCE(?, status), details = COALESCE(?, details),
			held = COALESCE(?, held), hold_expiry = CASE WHEN ? THEN ? ELSE hold_expiry END,
			last_delivery_attempt = COALESCE(?, last_delivery_attempt) WHERE id = ANY(?)`,
			nullString(c.status), nullString(c.details), held, c.hold, expiry, attempt, ids); err != nil {
			return fmt.Errorf("update %d messages: %w", len(ids), err)
		}
	}
	var (
		msgIDs                         []int64
		statuses, details, outputs, ls []string
		ssl                            []bool
		took                           []float64
		stamps                         []int64
	)
	for _, o := range outs {
		if d := o.delivery; d != nil {
			msgIDs, statuses = append(msgIDs, o.messageID), append(statuses, d.Status)
			details, outputs = append(details, truncate(d.Details, maxDetails)), append(outputs, truncate(d.Output, maxOutput))
			ssl, ls, took, stamps = append(ssl, d.SentWithSSL), append(ls, d.LogID), append(took, d.Time), append(stamps, now)
		}
	}
	if len(msgIDs) > 0 {
		if _, err := t.exec(ctx, `INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, time, timestamp)
			SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]),
				CAST(? AS BOOLEAN[]), CAST(? AS TEXT[]), CAST(? AS DOUBLE PRECISION[]), CAST(? AS BIGINT[]))`,
			msgIDs, statuses, details, outputs, ssl, ls, took, stamps); err != nil {
			return fmt.Errorf("insert %d deliveries: %w", len(msgIDs), err)
		}
	}
	return nil
}

// outcomeStmts are the statements an outcome needs, prepared once per
// transaction on SQLite (see stmt).
type outcomeStmts struct {
	retry, hold, finish, message, delivery *stmt
}

// keep writes a retried outcome's queued row: due again at its retryAfter
// (now when zero), unlocked, one attempt more unless it is a hold.
func (st *outcomeStmts) keep(ctx context.Context, now time.Time, o Outcome) (sql.Result, error) {
	after := o.retryAfter
	if after.IsZero() {
		after = now
	}
	s := st.retry
	if o.keepAttempts {
		s = st.hold
	}
	return s.ExecContext(ctx, after.UnixMicro(), now.UnixMicro(), o.queuedID, o.owner)
}

func prepareOutcome(ctx context.Context, t tx) (*outcomeStmts, error) {
	var st outcomeStmts
	for _, p := range []struct {
		dst **stmt
		q   string
	}{
		{&st.retry, `UPDATE queued_messages SET attempts = attempts + 1, retry_after = ?, locked_by = NULL,
			locked_until = NULL, updated_at = ? WHERE id = ? AND locked_by = ?`},
		{&st.hold, `UPDATE queued_messages SET retry_after = ?, locked_by = NULL,
			locked_until = NULL, updated_at = ? WHERE id = ? AND locked_by = ?`},
		{&st.finish, `DELETE FROM queued_messages WHERE id = ? AND locked_by = ?`},
		// NULL arguments leave a column unchanged.
		{&st.message, `UPDATE messages SET status = COALESCE(?, status), details = COALESCE(?, details),
			held = COALESCE(?, held), hold_expiry = CASE WHEN ? THEN ? ELSE hold_expiry END,
			last_delivery_attempt = COALESCE(?, last_delivery_attempt) WHERE id = ?`},
		{&st.delivery, `INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, time, timestamp)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
	} {
		stmt, err := t.prepare(ctx, p.q)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("prepare outcome statements: %w", err)
		}
		*p.dst = stmt
	}
	return &st, nil
}

func (st *outcomeStmts) close() {
	for _, s := range []*stmt{st.retry, st.hold, st.finish, st.message, st.delivery} {
		_ = s.Close()
	}
}

// apply records o's change to its message: status, details, hold, and the
// delivery row with the time of the attempt.
func (st *outcomeStmts) apply(ctx context.Context, now int64, o Outcome) error {
	if o.status != "" || o.details != "" || o.held || o.delivery != nil {
		var held, attempt any
		switch {
		case o.held:
			held = true
		case o.status == StatusSent || o.status == StatusSoftFail || o.status == StatusHardFail:
			held = false // a message released from a hold is no longer held
		}
		if o.delivery != nil {
			attempt = now
		}
		if _, err := st.message.ExecContext(ctx, nullString(o.status), nullString(truncate(o.details, maxDetails)), held, o.held,
			micros(o.holdExpiry), attempt, o.messageID); err != nil {
			return fmt.Errorf("update message %d: %w", o.messageID, err)
		}
	}
	if d := o.delivery; d != nil {
		if _, err := st.delivery.ExecContext(ctx, o.messageID, d.Status, truncate(d.Details, maxDetails), truncate(d.Output, maxOutput), d.SentWithSSL,
			d.LogID, d.Time, now); err != nil {
			return fmt.Errorf("insert delivery for message %d: %w", o.messageID, err)
		}
	}
	return nil
}
