package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pipelinable reports whether commitPipelined may record outs: no queued
// row or message appears twice (one statement changes each row once), and
// no outcome stores new messages (Bounces and Messages go through intake's
// inserts, and a bounce's id is written into its outcome's delivery) or
// marks another message Bounced (Links write message rows another outcome
// may also write, so their order matters). Every other effect (webhooks,
// suppressions added or removed, send limit marks, inspections, endpoints
// used) travels in the second pipeline.
func pipelinable(outs []Outcome) bool {
	queued := make(map[int64]bool, len(outs))
	msgs := make(map[int64]bool, len(outs))
	for _, o := range outs {
		if o.queuedID == 0 {
			continue
		}
		e := o.effects
		if len(e.Bounces) > 0 || len(e.Messages) > 0 || len(e.Links) > 0 || queued[o.queuedID] || msgs[o.messageID] {
			return false
		}
		queued[o.queuedID], msgs[o.messageID] = true, true
	}
	return true
}

// commitPipelined records outs on PostgreSQL in one transaction of two
// round trips, whatever the batch's size, with the result of the
// per-outcome statements (commitEach):
//
//  1. BEGIN and applyOutcomesSQL in one pipeline: one statement finishes or
//     keeps every queued row still locked by its owner, updates those rows'
//     messages and inserts their deliveries, and returns the queued ids it
//     applied;
//  2. the effects of the applied outcomes (in outcome order), the
//     endpoints used, the statistics upsert and COMMIT in one pipeline.
//
// A statement that fails makes the server skip the rest of its pipeline,
// COMMIT included; the transaction is then rolled back, so a failure leaves
// nothing recorded. The one exception is the last round trip running out
// of pipelineCommitLimit: its COMMIT is with the server by then and may
// still take effect, as any commit whose answer is lost (the lock guard
// makes the caller's retry a no-op for rows it finished).
//
// It sets applied[i], adds the applied outcomes to tl and returns the
// webhook requests created; on failure applied and tl are cleared. pgx
// prepares a statement the first time a connection sends it,
// one more round trip (the texts here do not depend on the batch's size).
func (s *Store) commitPipelined(ctx context.Context, now time.Time, outs []Outcome, applied []bool, tl tally) ([]int64, error) {
	var hooks []int64
	err := s.withPgx(ctx, func(c *pgx.Conn) error {
		defer endTx(ctx, c)
		done, err := applyOutcomes(ctx, c, now.UnixMicro(), outs)
		if err != nil {
			return err
		}
		used := map[string][]int64{}
		p := effectPipeline{b: &pgx.Batch{}}
		for i, o := range outs {
			if o.queuedID == 0 || !done[o.queuedID] {
				continue
			}
			applied[i] = true
			tl.countOutcome(o.serverID, &o)
			p.effects(now.UnixMicro(), o)
			for _, u := range o.effects.Used {
				if endpointTables[u.Type] != "" {
					used[u.Type] = append(used[u.Type], u.ID)
				}
			}
		}
		p.webhooks(now.UnixMicro())
		for _, st := range usedStatements(s.dialect, now.UnixMicro(), used) {
			p.queue("mark endpoints used", false, s.dialect.rebind(st.q), st.args...)
		}
		for _, st := range tl.statements(now) {
			p.queue("update statistics", false, s.dialect.rebind(st.q), st.args...)
		}
		// Like database/sql's Commit, the last round trip is not cut short
		// when ctx ends: once COMMIT may be on its way, the caller must
		// learn whether it was recorded. Its statements may wait on row
		// locks (a suppression another session holds), so it is bounded
		// all the same, or a stuck session could keep a draining worker
		// forever. Cut short there, the outcome is ambiguous but safe: a
		// retry finds the queued rows gone or unlocked and changes nothing.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pipelineCommitLimit)
		defer cancel()
		hooks, err = p.commit(cctx, c)
		return err
	})
	if err != nil {
		clear(applied)
		clear(tl)
		return nil, fmt.Errorf("record outcomes: %w", err)
	}
	return hooks, nil
}

// pipelineCommitLimit bounds commitPipelined's last round trip (effects,
// statistics and COMMIT), which its caller's context does not cut short.
var pipelineCommitLimit = 30 * time.Second

// endTx rolls back the transaction a failed commitPipelined left open, so
// the connection goes back to the pool clean; one that cannot roll back is
// closed (the pool then drops it).
func endTx(ctx context.Context, c *pgx.Conn) {
	if c.IsClosed() || c.PgConn().TxStatus() == 'I' {
		return
	}
	// Even when ctx has ended: the connection is reused.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.Exec(rctx, "ROLLBACK"); err != nil || c.PgConn().TxStatus() != 'I' {
		_ = c.Close(rctx)
	}
}

// applyOutcomesSQL applies a batch of outcomes given as one array per
// column ($1-$19, one element per outcome, in order) at time $20 (micros),
// with the result of outcomeStmts' keep or finish, then apply, for each:
// the queued row is deleted (or, for a retry, unlocked and due again) only
// when its owner still holds it; only for the rows so applied is the
// message changed (NULL leaves a column as it is) and the delivery row
// inserted (in outcome order). It returns the applied queued ids. The
// parts of one statement see the same snapshot, so each reads the rows the
// others changed only through their RETURNING (applied).
const applyOutcomesSQL = `WITH o AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::boolean[], $5::boolean[], $6::bigint[],
		$7::boolean[], $8::text[], $9::text[], $10::boolean[], $11::boolean[], $12::bigint[], $13::boolean[],
		$14::text[], $15::text[], $16::text[], $17::boolean[], $18::text[], $19::double precision[])
		WITH ORDINALITY AS o(qid, owner, mid, retry, keep_attempts, retry_after,
			change, status, details, held, hold, hold_expiry, attempt,
			d_status, d_details, d_output, d_ssl, d_log, d_time, n)
), finished AS (
	DELETE FROM queued_messages q USING o
	WHERE NOT o.retry AND q.id = o.qid AND q.locked_by = o.owner RETURNING q.id
), kept AS (
	UPDATE queued_messages q SET attempts = q.attempts + CASE WHEN o.keep_attempts THEN 0 ELSE 1 END,
		retry_after = o.retry_after, locked_by = NULL, locked_until = NULL, updated_at = $20
	FROM o WHERE o.retry AND q.id = o.qid AND q.locked_by = o.owner RETURNING q.id
), applied AS (
	SELECT id FROM finished UNION ALL SELECT id FROM kept
), changed AS (
	UPDATE messages m SET status = COALESCE(o.status, m.status), details = COALESCE(o.details, m.details),
		held = COALESCE(o.held, m.held), hold_expiry = CASE WHEN o.hold THEN o.hold_expiry ELSE m.hold_expiry END,
		last_delivery_attempt = CASE WHEN o.attempt THEN $20 ELSE m.last_delivery_attempt END
	FROM o JOIN applied a ON a.id = o.qid WHERE o.change AND m.id = o.mid
), delivered AS (
	INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, time, timestamp)
	SELECT o.mid, o.d_status, o.d_details, o.d_output, o.d_ssl, o.d_log, o.d_time, $20
	FROM o JOIN applied a ON a.id = o.qid WHERE o.d_status IS NOT NULL ORDER BY o.n
)
SELECT id FROM applied`

// outcomeCols are outcomes as the arrays of applyOutcomesSQL.
type outcomeCols struct {
	qids, mids, after               []int64
	owners, dDetails, dOutput, dLog []string
	retry, keep, change, hold, ssl  []bool
	status, details, dStatus        []*string
	held                            []*bool
	expiry                          []*int64
	attempt                         []bool
	took                            []float64
}

func (c *outcomeCols) add(now int64, o Outcome) {
	after := now
	if !o.retryAfter.IsZero() {
		after = o.retryAfter.UnixMicro()
	}
	c.qids, c.mids, c.owners = append(c.qids, o.queuedID), append(c.mids, o.messageID), append(c.owners, o.owner)
	c.retry, c.keep, c.after = append(c.retry, o.retry), append(c.keep, o.keepAttempts), append(c.after, after)
	ch, ok := changeOf(o)
	var held *bool
	switch ch.held {
	case 1:
		held = new(true)
	case 2:
		held = new(false)
	}
	c.change, c.status, c.details = append(c.change, ok), append(c.status, optString(ch.status)), append(c.details, optString(ch.details))
	c.held, c.hold, c.expiry, c.attempt = append(c.held, held), append(c.hold, ch.hold), append(c.expiry, optID(ch.holdExpiry)),
		append(c.attempt, ch.attempt)
	d := o.delivery
	if d == nil {
		d = &NewDelivery{}
		c.dStatus = append(c.dStatus, nil)
	} else {
		c.dStatus = append(c.dStatus, &d.Status)
	}
	c.dDetails, c.dOutput = append(c.dDetails, truncate(d.Details, maxDetails)), append(c.dOutput, truncate(d.Output, maxOutput))
	c.ssl, c.dLog, c.took = append(c.ssl, d.SentWithSSL), append(c.dLog, d.LogID), append(c.took, d.Time)
}

// applyOutcomes begins the transaction and applies outs in one round trip;
// it returns the queued ids applied.
func applyOutcomes(ctx context.Context, c *pgx.Conn, now int64, outs []Outcome) (map[int64]bool, error) {
	var cols outcomeCols
	for _, o := range outs {
		if o.queuedID != 0 {
			cols.add(now, o)
		}
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(applyOutcomesSQL, cols.qids, cols.owners, cols.mids, cols.retry, cols.keep, cols.after,
		cols.change, cols.status, cols.details, cols.held, cols.hold, cols.expiry, cols.attempt,
		cols.dStatus, cols.dDetails, cols.dOutput, cols.ssl, cols.dLog, cols.took, now)
	br := c.SendBatch(ctx, b)
	done, err := readApplied(br, len(cols.qids))
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("apply %d outcomes: %w", len(cols.qids), err)
	}
	return done, nil
}

func readApplied(br pgx.BatchResults, n int) (map[int64]bool, error) {
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	done := make(map[int64]bool, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		done[id] = true
	}
	return done, rows.Err()
}

// effectPipeline gathers the second round trip of commitPipelined.
type effectPipeline struct {
	b *pgx.Batch
	// what names each queued statement for errors; ids marks those that
	// return webhook request ids.
	what []string
	ids  []bool
	// hooks are the webhook requests of the applied outcomes, inserted by
	// one statement.
	hooks []NewWebhookRequest
}

func (p *effectPipeline) queue(what string, ids bool, q string, args ...any) {
	p.b.Queue(q, args...)
	p.what, p.ids = append(p.what, what), append(p.ids, ids)
}

// effects queues what applyEffects writes for o, in its order; the webhook
// requests are gathered for webhooks. Only the effects pipelinable admits
// are written.
func (p *effectPipeline) effects(now int64, o Outcome) {
	e := o.effects
	if e.empty() {
		return
	}
	pg := dialect{driver: Postgres}
	what := fmt.Sprintf("effects of queued message %d", o.queuedID)
	if e.Inspection != nil {
		for _, st := range inspectionStatements(o.messageID, e.Inspection) {
			p.queue(what+": inspection", false, pg.rebind(st.q), st.args...)
		}
	}
	for _, n := range e.Suppress {
		st := suppressionStatement(now, n)
		p.queue(what+": suppress "+n.Address, false, pg.rebind(st.q), st.args...)
	}
	for _, u := range e.Unsuppress {
		st := unsuppressStatement(u)
		p.queue(what+": unsuppress "+u.Address, false, pg.rebind(st.q), st.args...)
	}
	if sl := e.SendLimit; sl != nil && sl.Limit > 0 {
		if crossed(sl) == 0 {
			p.queue(what+": clear send limit marks", false, pg.rebind(clearSendLimitSQL), sl.ServerID)
		}
		for _, c := range sendLimitCrossings(sl) {
			if len(c.reqs) == 0 {
				p.queue(what+": mark "+c.column, false, pg.rebind(markSendLimitSQL(c.column)), now, sl.ServerID)
				continue
			}
			// The crossing's requests are written only when this
			// outcome set the mark, as applySendLimit does.
			q := `WITH marked AS (` + pg.rebind(markSendLimitSQL(c.column)) + ` RETURNING id) ` +
				renumber(insertHookRowsSQL, 2) + ` WHERE EXISTS (SELECT 1 FROM marked) ORDER BY r.n RETURNING id`
			p.queue(what+": send limit webhook requests", true, q, append([]any{now, sl.ServerID}, hookArgs(now, c.reqs)...)...)
		}
	}
	p.hooks = append(p.hooks, e.Webhooks...)
}

// webhooks queues the insert of the gathered webhook requests.
func (p *effectPipeline) webhooks(now int64) {
	if len(p.hooks) == 0 {
		return
	}
	p.queue("webhook requests", true, insertHookRowsSQL+` ORDER BY r.n RETURNING id`, hookArgs(now, p.hooks)...)
}

// insertHookRowsSQL inserts webhook requests given as arrays ($3-$9: uuids,
// servers, webhooks, messages, urls, events, payloads), due at $1 and
// created at $2, in array order; the caller appends the ORDER BY (and may
// put a WHERE before it).
const insertHookRowsSQL = `INSERT INTO webhook_requests (uuid, server_id, webhook_id, message_id, url, event, payload, retry_after, created_at)
	SELECT r.u, r.s, r.w, r.m, r.url, r.ev, r.p, $1, $2
	FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[])
		WITH ORDINALITY AS r(u, s, w, m, url, ev, p, n)`

func hookArgs(now int64, reqs []NewWebhookRequest) []any {
	n := len(reqs)
	uuids, urls, events, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	servers, hooks, msgs := make([]int64, n), make([]*int64, n), make([]*int64, n)
	for i, r := range reqs {
		uuids[i], servers[i], hooks[i], msgs[i] = newUUID(), r.ServerID, optID(r.WebhookID), optID(r.MessageID)
		urls[i], events[i], payloads[i] = r.URL, r.Event, r.Payload
	}
	return []any{now, now, uuids, servers, hooks, msgs, urls, events, payloads}
}

// renumber shifts the $n placeholders of q by k (q follows k arguments of
// a statement it is part of).
func renumber(q string, k int) string {
	var b []byte
	for i := 0; i < len(q); i++ {
		if q[i] != '$' {
			b = append(b, q[i])
			continue
		}
		j := i + 1
		n := 0
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			n = n*10 + int(q[j]-'0')
			j++
		}
		b = fmt.Appendf(b, "$%d", n+k)
		i = j - 1
	}
	return string(b)
}

// commit sends the gathered statements and COMMIT in one pipeline and
// returns the webhook request ids they created.
func (p *effectPipeline) commit(ctx context.Context, c *pgx.Conn) ([]int64, error) {
	p.b.Queue("COMMIT")
	br := c.SendBatch(ctx, p.b)
	hooks, err := p.read(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("commit: %w", cerr)
	}
	if err == nil && c.PgConn().TxStatus() != 'I' {
		err = errors.New("commit: the transaction is still open")
	}
	return hooks, err
}

func (p *effectPipeline) read(br pgx.BatchResults) ([]int64, error) {
	var hooks []int64
	for i, ids := range p.ids {
		if !ids {
			if _, err := br.Exec(); err != nil {
				return nil, fmt.Errorf("%s: %w", p.what[i], err)
			}
			continue
		}
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.what[i], err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: %w", p.what[i], err)
			}
			hooks = append(hooks, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p.what[i], err)
		}
	}
	tag, err := br.Exec()
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	// COMMIT of a transaction that failed answers ROLLBACK, not an error.
	if tag.String() != "COMMIT" {
		return nil, fmt.Errorf("commit: the server answered %s", tag)
	}
	return hooks, nil
}
