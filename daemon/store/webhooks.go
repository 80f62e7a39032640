package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Webhook request delivery: claims, attempt outcomes, the attempt log and
// its pruning. Requests are created by InsertWebhookRequests (outbound.go).

// WebhookRequestLock is the claim state of a webhook request, for deciding
// what to do with a dispatch entry whose row could not be claimed.
type WebhookRequestLock struct {
	ID          int64
	RetryAfter  time.Time
	LockedBy    string
	LockedUntil time.Time
}

const webhookRequestColumns = `id, uuid, server_id, webhook_id, url, event, payload, attempts, retry_after, error, created_at`

func collectWebhookRequests(rows *sql.Rows) ([]*WebhookRequest, error) {
	defer rows.Close()
	var out []*WebhookRequest
	for rows.Next() {
		var (
			r              WebhookRequest
			hook           sql.NullInt64
			errText        sql.NullString
			retry, created int64
		)
		if err := rows.Scan(&r.ID, &r.UUID, &r.ServerID, &hook, &r.URL, &r.Event, &r.Payload, &r.Attempts, &retry, &errText, &created); err != nil {
			return nil, err
		}
		r.WebhookID, r.Error = hook.Int64, errText.String
		r.RetryAfter, r.CreatedAt = time.UnixMicro(retry), time.UnixMicro(created)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// ClaimWebhookRequests locks the given webhook requests for owner until
// until, by compare-and-set: only rows that are due (retry_after <= now)
// and unlocked (or whose lock expired) are taken, as ClaimQueued does. It
// returns the rows it took, in id order; ids that are gone, not due or
// locked by someone else are left out. The claim commits lightly (see
// lightly): a lost claim leaves the row claimable.
func (s *Store) ClaimWebhookRequests(ctx context.Context, ids []int64, owner string, now, until time.Time) ([]*WebhookRequest, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := []any{owner, until.UnixMicro()}
	args = append(args, int64Args(ids)...)
	args = append(args, now.UnixMicro(), now.UnixMicro())
	var out []*WebhookRequest
	err := s.lightly(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, s.dialect.rebind(`UPDATE webhook_requests SET locked_by = ?, locked_until = ?
			WHERE id IN (`+placeholders(len(ids))+`) AND retry_after <= ? AND (locked_by IS NULL OR locked_until < ?)
			RETURNING `+webhookRequestColumns), args...)
		if err != nil {
			return err
		}
		out, err = collectWebhookRequests(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook requests: %w", err)
	}
	sortRequests(out)
	return out, nil
}

func sortRequests(rs []*WebhookRequest) {
	for i := 1; i < len(rs); i++ { // RETURNING has no order; batches are small
		for j := i; j > 0 && rs[j].ID < rs[j-1].ID; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// WebhookRequestLocks returns the claim state of the requests with ids, in
// id order; ids that are gone are left out.
func (s *Store) WebhookRequestLocks(ctx context.Context, ids []int64) ([]WebhookRequestLock, error) {
	var out []WebhookRequestLock
	for start := 0; start < len(ids); start += maintenancePage {
		chunk := ids[start:min(start+maintenancePage, len(ids))]
		rows, err := s.query(ctx, `SELECT id, retry_after, locked_by, locked_until FROM webhook_requests
			WHERE id IN (`+placeholders(len(chunk))+`) ORDER BY id`, int64Args(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("webhook request locks: %w", err)
		}
		for rows.Next() {
			var (
				l     WebhookRequestLock
				retry int64
				by    sql.NullString
				until sql.NullInt64
			)
			if err := rows.Scan(&l.ID, &retry, &by, &until); err != nil {
				rows.Close()
				return nil, fmt.Errorf("webhook request locks: %w", err)
			}
			l.RetryAfter, l.LockedBy, l.LockedUntil = time.UnixMicro(retry), by.String, fromMicros(until)
			out = append(out, l)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("webhook request locks: %w", err)
		}
	}
	return out, nil
}

// WebhookAttemptOutcome is the result of one attempt on a claimed request.
type WebhookAttemptOutcome struct {
	RequestID int64
	// Owner must still hold the request's lock, or the outcome is refused.
	Owner string
	// StatusCode is the HTTP status or Postal's negative failure code.
	StatusCode int
	// Result names the outcome (ok, http_error, timeout, ...).
	Result   string
	Duration time.Duration
	// Response is the response excerpt (already valid UTF-8).
	Response string
	// At is when the attempt was made.
	At time.Time
	// Done deletes the request (delivered, or given up); otherwise it is
	// kept, unlocked, with attempts + 1, due at RetryAfter.
	Done       bool
	RetryAfter time.Time
	// Success stamps the webhook's last_used_at.
	Success bool
	// Error is kept on a retried request (Postal's "Couldn't send to URL").
	Error string
}

// RecordWebhookAttempts applies outcomes in ONE transaction: for each, an
// attempt row is logged (attempt = the request's attempts + 1, will_retry =
// !Done) and the request is deleted or rescheduled; each webhook with a
// successful attempt gets last_used_at = its latest such attempt. Each is
// guarded by the lock owner: an outcome whose request is no longer locked
// by its Owner (lock expired and taken over, or row gone) changes nothing
// and is reported false.
//
// The transaction commits lightly (see lightTx): a machine crash may undo
// it, and then the request's lock expires and it is sent again with the
// same uuid, as after a worker crash before recording; the next durable
// commit of the process (intake, outcomes) makes it durable too. So a
// stream of attempts does not hold SQLite's single writer for one fsync
// per batch.
func (s *Store) RecordWebhookAttempts(ctx context.Context, outs []WebhookAttemptOutcome) ([]bool, error) {
	applied := make([]bool, len(outs))
	if len(outs) == 0 {
		return applied, nil
	}
	if s.dialect.driver == Postgres {
		if err := s.recordWebhookAttemptsPipelined(ctx, outs, applied); err != nil {
			return nil, fmt.Errorf("record webhook attempts: %w", err)
		}
		return applied, nil
	}
	// Prepared once per connection (see stmtCache), not per transaction.
	stmts, err := s.preparedAll(ctx, recordAttemptSQL, finishRequestSQL, retryRequestSQL, stampWebhookSQL)
	if err != nil {
		return nil, fmt.Errorf("record webhook attempts: %w", err)
	}
	err = s.lightTx(ctx, func(t tx) error {
		var bound [4]*sql.Stmt // stmts bound to t, when first needed
		use := func(i int) *sql.Stmt {
			if bound[i] == nil {
				bound[i] = t.StmtContext(ctx, stmts[i])
			}
			return bound[i]
		}
		lastUsed := map[int64]int64{} // webhook id -> latest successful attempt
		for i, o := range outs {
			var hook sql.NullInt64
			err := use(0).QueryRowContext(ctx, o.StatusCode, o.Result, o.Duration.Microseconds(), o.Response, !o.Done,
				o.At.UnixMicro(), o.RequestID, o.Owner).Scan(&hook)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("log attempt of request %d: %w", o.RequestID, err)
			}
			applied[i] = true
			if o.Success && hook.Valid && o.At.UnixMicro() > lastUsed[hook.Int64] {
				lastUsed[hook.Int64] = o.At.UnixMicro()
			}
			if o.Done {
				_, err = use(1).ExecContext(ctx, o.RequestID, o.Owner)
			} else {
				_, err = use(2).ExecContext(ctx, o.RetryAfter.UnixMicro(), nullString(o.Error), o.RequestID, o.Owner)
			}
			if err != nil {
				return fmt.Errorf("settle request %d: %w", o.RequestID, err)
			}
		}
		for hook, at := range lastUsed {
			if _, err := use(3).ExecContext(ctx, at, hook, at); err != nil {
				return fmt.Errorf("stamp webhook %d: %w", hook, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record webhook attempts: %w", err)
	}
	return applied, nil
}

// recordWebhookAttemptsPipelined is RecordWebhookAttempts on PostgreSQL:
// the relaxed commit, every attempt row, one stamp of the webhooks' last
// use and every settling statement travel in one pipeline, one round trip
// and one implicit transaction (as lightlyQuery), where a transaction of
// separate statements takes BEGIN, SET LOCAL, two per outcome and COMMIT.
// A statement that fails aborts the whole of it. applied[i] is set for
// each outcome whose attempt row was logged.
func (s *Store) recordWebhookAttemptsPipelined(ctx context.Context, outs []WebhookAttemptOutcome, applied []bool) error {
	return s.withPgx(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
		record := s.dialect.rebind(recordAttemptSQL)
		var okIDs, okAts []int64
		var okOwners []string
		for _, o := range outs {
			b.Queue(record, o.StatusCode, o.Result, o.Duration.Microseconds(), o.Response, !o.Done, o.At.UnixMicro(), o.RequestID, o.Owner)
			if o.Success {
				okIDs, okOwners, okAts = append(okIDs, o.RequestID), append(okOwners, o.Owner), append(okAts, o.At.UnixMicro())
			}
		}
		// Before the settling statements: the stamp reads the requests'
		// webhook ids, guarded by their owners, as the attempt rows did.
		if len(okIDs) > 0 {
			b.Queue(stampWebhooksPostgresSQL, okIDs, okOwners, okAts)
		}
		finish, retry := s.dialect.rebind(finishRequestSQL), s.dialect.rebind(retryRequestSQL)
		for _, o := range outs {
			if o.Done {
				b.Queue(finish, o.RequestID, o.Owner)
			} else {
				b.Queue(retry, o.RetryAfter.UnixMicro(), nullString(o.Error), o.RequestID, o.Owner)
			}
		}
		br := c.SendBatch(ctx, b)
		err := readRecordPipeline(br, outs, applied, len(okIDs) > 0)
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("commit: %w", cerr)
		}
		if err != nil {
			clear(applied)
		}
		return err
	})
}

func readRecordPipeline(br pgx.BatchResults, outs []WebhookAttemptOutcome, applied []bool, stamp bool) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("relax commit: %w", err)
	}
	for i, o := range outs {
		var hook *int64
		err := br.QueryRow().Scan(&hook)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("log attempt of request %d: %w", o.RequestID, err)
		}
		applied[i] = true
	}
	if stamp {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("stamp webhooks: %w", err)
		}
	}
	for _, o := range outs {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("settle request %d: %w", o.RequestID, err)
		}
	}
	return nil
}

// stampWebhooksPostgresSQL sets each webhook's last_used_at to its latest
// successful attempt among the request ids ($1), owners ($2) and attempt
// times ($3) of one batch, for the requests still locked by those owners,
// never moving it back.
const stampWebhooksPostgresSQL = `UPDATE webhooks AS w SET last_used_at = s.at
	FROM (SELECT r.webhook_id AS id, max(o.at) AS at
		FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS o(id, owner, at)
		JOIN webhook_requests r ON r.id = o.id AND r.locked_by = o.owner
		WHERE r.webhook_id IS NOT NULL GROUP BY r.webhook_id) AS s
	WHERE w.id = s.id AND (w.last_used_at IS NULL OR w.last_used_at < s.at)`

// The statements of RecordWebhookAttempts.
const (
	recordAttemptSQL = `INSERT INTO webhook_attempts (request_uuid, server_id, webhook_id, message_id, event, url, attempt,
		status_code, result, duration_us, response, payload, will_retry, created_at)
		SELECT uuid, server_id, webhook_id, message_id, event, url, attempts + 1, ?, ?, ?, ?, payload, ?, ?
		FROM webhook_requests WHERE id = ? AND locked_by = ? RETURNING webhook_id`
	finishRequestSQL = `DELETE FROM webhook_requests WHERE id = ? AND locked_by = ?`
	retryRequestSQL  = `UPDATE webhook_requests SET attempts = attempts + 1, retry_after = ?, error = ?,
		locked_by = NULL, locked_until = NULL WHERE id = ? AND locked_by = ?`
	stampWebhookSQL = `UPDATE webhooks SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`
)

// WebhookRelease hands a claimed request back without an attempt, due at Due.
type WebhookRelease struct {
	RequestID int64
	Owner     string
	Due       time.Time
}

// ReleaseWebhookRequests unlocks claimed requests without counting an
// attempt and makes each due at its Due (a worker parks work for a receiver
// that is slow), in one transaction. Requests no longer locked by their
// owner are left alone. It returns how many were released.
func (s *Store) ReleaseWebhookRequests(ctx context.Context, rs []WebhookRelease) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(t tx) error {
		st, err := t.PrepareContext(ctx, t.d.rebind(`UPDATE webhook_requests SET locked_by = NULL, locked_until = NULL, retry_after = ?
			WHERE id = ? AND locked_by = ?`))
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer st.Close()
		for _, r := range rs {
			res, err := st.ExecContext(ctx, r.Due.UnixMicro(), r.RequestID, r.Owner)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("release webhook requests: %w", err)
	}
	return n, nil
}

// AbandonWebhookRequest deletes a request whoever holds it and logs a
// final attempt with result "dead" and reason as the response: its dispatch
// entry was handed out too often without an outcome (workers crashed or
// stalled on it). A request already gone is not an error.
func (s *Store) AbandonWebhookRequest(ctx context.Context, id int64, reason string) error {
	now := s.now().UnixMicro()
	err := s.inTx(ctx, func(t tx) error {
		if _, err := t.exec(ctx, `INSERT INTO webhook_attempts (request_uuid, server_id, webhook_id, message_id, event, url, attempt,
			status_code, result, duration_us, response, payload, will_retry, created_at)
			SELECT uuid, server_id, webhook_id, message_id, event, url, attempts + 1, 0, 'dead', 0, ?, payload, ?, ? FROM webhook_requests WHERE id = ?`,
			reason, false, now, id); err != nil {
			return err
		}
		_, err := t.exec(ctx, `DELETE FROM webhook_requests WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("abandon webhook request %d: %w", id, err)
	}
	return nil
}

// WebhookAttempt is one logged attempt.
type WebhookAttempt struct {
	ID          int64  `json:"id"`
	RequestUUID string `json:"uuid"`
	ServerID    int64  `json:"server_id"`
	// WebhookID is 0 when the request had no webhook.
	WebhookID  int64         `json:"webhook_id,omitempty"`
	Event      string        `json:"event"`
	URL        string        `json:"url"`
	Attempt    int           `json:"attempt"`
	StatusCode int           `json:"status_code"`
	Result     string        `json:"result"`
	Duration   time.Duration `json:"duration_ns"`
	Response   string        `json:"response"`
	Payload    string        `json:"payload"`
	WillRetry  bool          `json:"will_retry"`
	CreatedAt  time.Time     `json:"timestamp"`
}

// WebhookAttemptFilter selects attempts to list.
type WebhookAttemptFilter struct {
	ServerID int64
	// WebhookID, when not 0, keeps only that webhook's attempts.
	WebhookID int64
	// Failed keeps only attempts whose result is not "ok".
	Failed bool
	// RequestUUID, when not "", keeps only the attempts of that request.
	RequestUUID string
	// MessageID, when not 0, keeps only the attempts of requests about
	// that message; ServerID may then be 0 (any server).
	MessageID int64
	// BeforeID, when not 0, pages: only attempts with a smaller id.
	BeforeID int64
	// Limit caps the rows (default 50, at most 1000).
	Limit int
}

// WebhookAttempts lists a server's logged attempts, newest first.
func (s *Store) WebhookAttempts(ctx context.Context, f WebhookAttemptFilter) ([]*WebhookAttempt, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 1000)
	where := `server_id = ?`
	args := []any{f.ServerID}
	if f.MessageID != 0 {
		where, args = `message_id = ?`, []any{f.MessageID}
		if f.ServerID != 0 {
			where += ` AND server_id = ?`
			args = append(args, f.ServerID)
		}
	}
	if f.WebhookID != 0 {
		where += ` AND webhook_id = ?`
		args = append(args, f.WebhookID)
	}
	if f.Failed {
		where += ` AND result <> 'ok'`
	}
	if f.RequestUUID != "" {
		where += ` AND request_uuid = ?`
		args = append(args, f.RequestUUID)
	}
	if f.BeforeID != 0 {
		where += ` AND id < ?`
		args = append(args, f.BeforeID)
	}
	args = append(args, f.Limit)
	rows, err := s.query(ctx, `SELECT id, request_uuid, server_id, webhook_id, event, url, attempt, status_code, result,
		duration_us, response, payload, will_retry, created_at FROM webhook_attempts WHERE `+where+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", err)
	}
	defer rows.Close()
	out := []*WebhookAttempt{}
	for rows.Next() {
		var (
			a       WebhookAttempt
			hook    sql.NullInt64
			dur, at int64
		)
		if err := rows.Scan(&a.ID, &a.RequestUUID, &a.ServerID, &hook, &a.Event, &a.URL, &a.Attempt, &a.StatusCode, &a.Result,
			&dur, &a.Response, &a.Payload, &a.WillRetry, &at); err != nil {
			return nil, fmt.Errorf("list webhook attempts: %w", err)
		}
		a.WebhookID, a.Duration, a.CreatedAt = hook.Int64, time.Duration(dur)*time.Microsecond, time.UnixMicro(at)
		out = append(out, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", err)
	}
	return out, nil
}

// PruneWebhookAttempts deletes logged attempts made before before, in
// chunks so no transaction grows large, and returns how many it deleted.
func (s *Store) PruneWebhookAttempts(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.exec(ctx, `DELETE FROM webhook_attempts WHERE id IN
			(SELECT id FROM webhook_attempts WHERE created_at < ? ORDER BY id LIMIT ?)`, before.UnixMicro(), maintenancePage)
		if err != nil {
			return total, fmt.Errorf("prune webhook attempts: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < maintenancePage || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// WebhookRequestCounts summarises pending webhook requests.
type WebhookRequestCounts struct {
	Total  int64 `json:"total"`
	Due    int64 `json:"due"`
	Locked int64 `json:"locked"`
}

// CountWebhookRequests returns WebhookRequestCounts at now.
func (s *Store) CountWebhookRequests(ctx context.Context, now time.Time) (WebhookRequestCounts, error) {
	var c WebhookRequestCounts
	n := now.UnixMicro()
	err := s.queryRow(ctx, `SELECT count(*),
		COALESCE(sum(CASE WHEN retry_after <= ? THEN 1 ELSE 0 END), 0),
		COALESCE(sum(CASE WHEN locked_by IS NOT NULL AND locked_until >= ? THEN 1 ELSE 0 END), 0)
		FROM webhook_requests`, n, n).Scan(&c.Total, &c.Due, &c.Locked)
	if err != nil {
		return c, fmt.Errorf("count webhook requests: %w", err)
	}
	return c, nil
}

// MaxMessageWebhooks caps the pending requests WebhookRequestsOfMessage returns.
const MaxMessageWebhooks = 100

// WebhookRequestsOfMessage returns the webhook requests about message id
// that are still pending (not yet delivered, or being retried), oldest
// first, at most MaxMessageWebhooks.
func (s *Store) WebhookRequestsOfMessage(ctx context.Context, id int64) ([]*WebhookRequest, error) {
	rows, err := s.query(ctx, `SELECT id FROM webhook_requests WHERE message_id = ? ORDER BY id LIMIT ?`, id, MaxMessageWebhooks)
	if err != nil {
		return nil, fmt.Errorf("webhook requests of message %d: %w", id, err)
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("webhook requests of message %d: %w", id, err)
	}
	reqs, err := s.WebhookRequests(ctx, ids)
	if err != nil {
		return nil, err
	}
	if reqs == nil {
		reqs = []*WebhookRequest{}
	}
	return reqs, nil
}
