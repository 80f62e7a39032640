package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Loaded is what a worker's Handler reads for a claimed queued row, read by
// the claim itself (on PostgreSQL in the claim's statement, so claim and
// load are one round trip): the message, its body, the row's manual flag
// and, for outgoing rows, the recipient's suppression entry in force.
type Loaded struct {
	// Message is nil when the message was deleted (the row is then dropped).
	Message *Message
	// Raw is the body; nil when the body is gone (retention) or the message is.
	Raw []byte
	// Manual reports a row released by hand (ReleaseHeld).
	Manual bool
	// Suppression is the message's server's recipient suppression entry
	// for RcptTo in force at the claim's now (outgoing rows only; compared
	// case-insensitively as ActiveSuppressions does); nil when none.
	Suppression *Suppression
}

// ClaimQueued locks the given queued messages for owner until until, by
// compare-and-set: only rows that are due (retry_after <= now) and unlocked
// (or whose lock expired) are taken. It returns the rows it took, in id
// order, each with its Loaded data; ids that are gone, not due or locked by
// someone else are silently left out. On PostgreSQL the claim and the load
// are one statement in one round trip (its commit does not wait for the
// disk, see lightly); on SQLite the load follows the claim.
func (s *Store) ClaimQueued(ctx context.Context, ids []int64, owner string, now, until time.Time) ([]*QueuedMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in, inArgs := s.dialect.inIDs("id", ids)
	args := []any{owner, until.UnixMicro(), now.UnixMicro()}
	args = append(args, inArgs...)
	args = append(args, now.UnixMicro(), now.UnixMicro())
	out, err := s.claimLoaded(ctx, `UPDATE queued_messages SET locked_by = ?, locked_until = ?, updated_at = ?
			WHERE `+in+` AND retry_after <= ? AND (locked_by IS NULL OR locked_until < ?)`, args, now)
	if err != nil {
		return nil, fmt.Errorf("claim queued messages: %w", err)
	}
	return out, nil
}

// ClaimQueuedForDomain locks up to limit other due, unlocked queued messages
// of scope for the same destination domain (Postal's batching), skipping
// rows other claimers hold, and returns them loaded as ClaimQueued does.
func (s *Store) ClaimQueuedForDomain(ctx context.Context, scope, domain, owner string, now, until time.Time, limit int) ([]*QueuedMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	n := now.UnixMicro()
	out, err := s.claimLoaded(ctx, `UPDATE queued_messages SET locked_by = ?, locked_until = ?, updated_at = ?
			WHERE id IN (SELECT id FROM queued_messages WHERE scope = ? AND domain = ? AND retry_after <= ?
				AND (locked_by IS NULL OR locked_until < ?) ORDER BY id LIMIT ?`+s.dialect.skipLocked()+`)
			AND retry_after <= ? AND (locked_by IS NULL OR locked_until < ?)`,
		[]any{owner, until.UnixMicro(), n, scope, strings.ToLower(domain), n, n, limit, n, n}, now)
	if err != nil {
		return nil, fmt.Errorf("claim queued messages for %s: %w", domain, err)
	}
	return out, nil
}

// loadJoin reads, for the queued rows named c, the rows' columns and manual
// flag, their message, body and recipient suppression (outgoing rows), in
// the column order scanLoaded expects; its one placeholder is the time the
// suppression must still be in force after.
const loadJoin = ` SELECT c.id, c.message_id, c.server_id, c.scope, c.domain, c.ip_address_id, c.attempts, c.retry_after,
	c.locked_by, c.locked_until, c.created_at, c.manual,
	m.id, m.server_id, m.token, m.scope, m.rcpt_to, m.mail_from, m.subject, m.message_id, m.tag, m.status, m.held,
	m.hold_expiry, m.bounce, m.bounce_for_id, m.domain_id, m.credential_id, m.route_id, m.raw_message_id, m.size,
	m.received_with_ssl, m.last_delivery_attempt, m.details, m.timestamp, m.endpoint_type, m.endpoint_id,
	r.id, r.data, sp.id, sp.address, sp.reason, sp.timestamp, sp.keep_until
	FROM c LEFT JOIN messages m ON m.id = c.message_id
	LEFT JOIN raw_messages r ON r.id = m.raw_message_id
	LEFT JOIN suppressions sp ON c.scope = 'outgoing' AND sp.server_id = m.server_id AND sp.type = 'recipient'
		AND sp.address = lower(m.rcpt_to) AND sp.keep_until > ?
	ORDER BY c.id`

// claimLoaded runs the claim update (an UPDATE queued_messages without
// RETURNING) and loads what it claimed. On PostgreSQL the update is a
// data-modifying CTE of the load, one statement run as lightlyQuery runs
// it: the message, body and suppression are read from the statement's
// snapshot, taken as the claim is made. On SQLite the claim commits (as
// lightly does) and the load reads the claimed rows afterwards, as the
// handler's own reads used to.
func (s *Store) claimLoaded(ctx context.Context, update string, args []any, now time.Time) ([]*QueuedMessage, error) {
	var out []*QueuedMessage
	collect := func(row interface{ Scan(...any) error }) error {
		q, err := scanLoaded(row)
		if err != nil {
			return err
		}
		out = append(out, q)
		return nil
	}
	if s.dialect.driver == Postgres {
		q := `WITH c AS (` + update + ` RETURNING ` + queuedColumns + `, manual)` + loadJoin
		if err := s.lightlyQuery(ctx, q, append(args, now.UnixMicro()), collect); err != nil {
			return nil, err
		}
	} else {
		var ids []int64
		err := s.lightlyQuery(ctx, update+` RETURNING id`, args, func(row interface{ Scan(...any) error }) error {
			var id int64
			if err := row.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		in, inArgs := s.dialect.inIDs("id", ids)
		rows, err := s.query(ctx, `WITH c AS (SELECT `+queuedColumns+`, manual FROM queued_messages WHERE `+in+`)`+loadJoin,
			append(inArgs, now.UnixMicro())...)
		if err != nil {
			return nil, fmt.Errorf("load claimed: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := collect(rows); err != nil {
				return nil, err
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load claimed: %w", err)
		}
	}
	if err := s.suppressionsBeyondASCII(ctx, out, now); err != nil {
		return nil, err
	}
	return out, nil
}

// suppressionsBeyondASCII looks up the suppressions of outgoing rows whose
// recipient is not ASCII with ActiveSuppressions: SQL's lower() folds only
// ASCII on SQLite (and follows the database's locale on PostgreSQL), while
// suppressions are stored lower-cased by Go. Such recipients are rare; each
// server with one costs a query.
func (s *Store) suppressionsBeyondASCII(ctx context.Context, rows []*QueuedMessage, now time.Time) error {
	byServer := map[int64][]*Loaded{}
	for _, q := range rows {
		l := q.Loaded
		if q.Scope != ScopeOutgoing || l.Message == nil || untrusted.IsASCII(l.Message.RcptTo) {
			continue
		}
		l.Suppression = nil
		byServer[l.Message.ServerID] = append(byServer[l.Message.ServerID], l)
	}
	for srv, ls := range byServer {
		addrs := make([]string, len(ls))
		for i, l := range ls {
			addrs[i] = l.Message.RcptTo
		}
		found, err := s.ActiveSuppressions(ctx, srv, addrs, now)
		if err != nil {
			return err
		}
		for _, l := range ls {
			l.Suppression = found[strings.ToLower(l.Message.RcptTo)]
		}
	}
	return nil
}

// scanLoaded scans one row of loadJoin.
func scanLoaded(sc interface{ Scan(...any) error }) (*QueuedMessage, error) {
	var (
		q                      QueuedMessage
		l                      Loaded
		ip, until              sql.NullInt64
		by                     sql.NullString
		retry, create          int64
		ms                     messageScan
		rawID                  sql.NullInt64
		data                   []byte
		supID, supTS, supUntil sql.NullInt64
		supAddress, supReason  sql.NullString
	)
	dest := []any{&q.ID, &q.MessageID, &q.ServerID, &q.Scope, &q.Domain, &ip, &q.Attempts, &retry, &by, &until, &create, &l.Manual}
	dest = append(dest, ms.dest()...)
	dest = append(dest, &rawID, &data, &supID, &supAddress, &supReason, &supTS, &supUntil)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	q.IPAddressID, q.LockedBy, q.LockedUntil = ip.Int64, by.String, fromMicros(until)
	q.RetryAfter, q.CreatedAt = time.UnixMicro(retry), time.UnixMicro(create)
	l.Message = ms.message()
	if rawID.Valid {
		if data == nil {
			data = []byte{} // an empty body is a body
		}
		l.Raw = data
	}
	if supID.Valid && l.Message != nil {
		l.Suppression = &Suppression{ID: supID.Int64, ServerID: l.Message.ServerID, Type: SuppressionRecipient,
			Address: supAddress.String, Reason: supReason.String, Timestamp: time.UnixMicro(supTS.Int64),
			KeepUntil: time.UnixMicro(supUntil.Int64)}
	}
	q.Loaded = &l
	return &q, nil
}

// LoadUnloaded reads, for the rows of batch claimed without their Loaded
// data, what a claim loads except the suppression entry: their messages,
// bodies and manual flags, in three queries for the whole batch. Rows that
// carry Loaded are left out. The result is keyed by queued message id; a row
// whose message is gone maps to a Loaded with a nil Message.
func (s *Store) LoadUnloaded(ctx context.Context, batch []*QueuedMessage) (map[int64]*Loaded, error) {
	var ids, qids []int64
	for _, q := range batch {
		if q.Loaded == nil {
			ids, qids = append(ids, q.MessageID), append(qids, q.ID)
		}
	}
	out := make(map[int64]*Loaded, len(qids))
	if len(ids) == 0 {
		return out, nil
	}
	msgs, err := s.Messages(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]*Message, len(msgs))
	rawIDs := make([]int64, 0, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
		if m.RawMessageID != 0 {
			rawIDs = append(rawIDs, m.RawMessageID)
		}
	}
	raws, err := s.RawMessages(ctx, rawIDs)
	if err != nil {
		return nil, err
	}
	manual, err := s.ManualQueued(ctx, qids)
	if err != nil {
		return nil, err
	}
	for _, q := range batch {
		if q.Loaded != nil {
			continue
		}
		l := &Loaded{Manual: manual[q.ID]}
		if m := byID[q.MessageID]; m != nil {
			l.Message, l.Raw = m, raws[m.RawMessageID]
		}
		out[q.ID] = l
	}
	return out, nil
}
