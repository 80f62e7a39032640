package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file holds what outgoing delivery (package outbound) reads and writes
// beyond the queue transitions: raw bodies in bulk, manual releases, holds,
// suppression lists, send-limit volume, webhook subscriptions and requests,
// IP pool routing, and bounce linking.

// StatusProcessed is the status Postal gives a received bounce once it has
// been linked to the message it reports on.
const StatusProcessed = "Processed"

// ErrNotHeld is returned (wrapped) by ReleaseHeld for a message that is not held.
var ErrNotHeld = errors.New("message is not held")

// RawMessages loads message bodies by raw_messages id in one query. Ids
// whose body is gone (retention) are absent from the map.
func (s *Store) RawMessages(ctx context.Context, ids []int64) (map[int64][]byte, error) {
	out := make(map[int64][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	in, args := s.dialect.inIDs("id", ids)
	rows, err := s.query(ctx, `SELECT id, data FROM raw_messages WHERE `+in, args...)
	if err != nil {
		return nil, fmt.Errorf("load raw messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   int64
			data []byte
		)
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("load raw messages: %w", err)
		}
		out[id] = data
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load raw messages: %w", err)
	}
	return out, nil
}

// CredentialByID looks a credential up by id; an unknown id wraps ErrNotFound.
func (s *Store) CredentialByID(ctx context.Context, id int64) (*Credential, error) {
	return s.credential(ctx, `WHERE id = ?`, id)
}

// ManualQueued reports which of the given queued messages were released by
// hand (ReleaseHeld): those skip the hold checks, as in Postal. Ids that are
// not manual or do not exist are absent from the map.
func (s *Store) ManualQueued(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	in, args := s.dialect.inIDs("id", ids)
	rows, err := s.query(ctx, `SELECT id FROM queued_messages WHERE `+in+` AND manual = ?`, append(args, true)...)
	if err != nil {
		return nil, fmt.Errorf("load manual queued messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("load manual queued messages: %w", err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load manual queued messages: %w", err)
	}
	return out, nil
}

// ReleaseHeld queues a held message again, due now and flagged manual so
// that delivery skips the hold checks (postalctl message release). The
// message's held flag is cleared in the same transaction. It returns the new
// queued row (whose Scope and Domain name the stream entry to add). An
// unknown message wraps ErrNotFound, one that is not held wraps ErrNotHeld,
// and one that is already queued wraps ErrConflict.
func (s *Store) ReleaseHeld(ctx context.Context, messageID int64) (*QueuedMessage, error) {
	now := s.now().UnixMicro()
	var q *QueuedMessage
	err := s.inTx(ctx, func(t tx) error {
		var (
			serverID            int64
			scope, rcpt, status string
			held                bool
		)
		err := t.queryRow(ctx, `SELECT server_id, scope, rcpt_to, status, held FROM messages WHERE id = ?`, messageID).
			Scan(&serverID, &scope, &rcpt, &status, &held)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %d: %w", messageID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", messageID, err)
		}
		if !held && status != StatusHeld {
			return fmt.Errorf("message %d (status %s): %w", messageID, status, ErrNotHeld)
		}
		domain := ""
		if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
			domain = strings.ToLower(rcpt[i+1:])
		}
		q, err = scanQueued(t.queryRow(ctx, `INSERT INTO queued_messages (message_id, server_id, scope, domain, retry_after,
			manual, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+queuedColumns,
			messageID, serverID, scope, domain, now, true, now, now))
		if isUniqueViolation(err) {
			return fmt.Errorf("message %d is already queued: %w", messageID, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("queue message %d: %w", messageID, err)
		}
		if _, err := t.exec(ctx, `UPDATE messages SET held = ?, hold_expiry = NULL WHERE id = ?`, false, messageID); err != nil {
			return fmt.Errorf("release message %d: %w", messageID, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("release held message: %w", err)
	}
	return q, nil
}

// OutgoingVolume counts the server's outgoing messages created since since
// that have been through a delivery attempt (status neither Pending nor
// Held): the volume a send limit is compared with. Postal counts the outgoing
// messages it processed in the last 60 minutes; messages still waiting for
// their first attempt are not counted, so a burst queued at once is judged
// as it is delivered, not all held up front.
func (s *Store) OutgoingVolume(ctx context.Context, serverID int64, since time.Time) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT count(*) FROM messages WHERE server_id = ? AND timestamp >= ? AND scope = ?
		AND status <> ? AND status <> ?`, serverID, since.UnixMicro(), ScopeOutgoing, StatusPending, StatusHeld).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count outgoing volume of server %d: %w", serverID, err)
	}
	return n, nil
}

// CountedAt returns the creation time of the server's message at offset
// (oldest first) among those OutgoingVolume counts since since: with a
// volume over the send limit by n, the window has room again once the
// message at offset n is older than the window. It returns the zero time
// when there is no such message.
func (s *Store) CountedAt(ctx context.Context, serverID int64, since time.Time, offset int64) (time.Time, error) {
	var ts int64
	err := s.queryRow(ctx, `SELECT timestamp FROM messages WHERE server_id = ? AND timestamp >= ? AND scope = ?
		AND status <> ? AND status <> ? ORDER BY timestamp LIMIT 1 OFFSET ?`,
		serverID, since.UnixMicro(), ScopeOutgoing, StatusPending, StatusHeld, max(offset, 0)).Scan(&ts)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("send window of server %d: %w", serverID, err)
	}
	return time.UnixMicro(ts), nil
}

// MarkBounced records that bounceID is a bounce of originalID, in one
// transaction: the original gets status Bounced and a Bounced delivery row
// (details and output made safe and capped by truncate), and the bounce is linked to it
// (bounce_for_id, and the original's domain when the bounce has none).
func (s *Store) MarkBounced(ctx context.Context, originalID, bounceID int64, details, output string) error {
	now := s.now().UnixMicro()
	err := s.inTx(ctx, func(t tx) error {
		return markBounced(ctx, t, now, BounceLink{OriginalID: originalID, BounceID: bounceID, Details: details, Output: output})
	})
	if err != nil {
		return fmt.Errorf("mark message %d bounced: %w", originalID, err)
	}
	return nil
}

// BounceLink says that the received bounce BounceID reports on the
// message OriginalID: see MarkBounced.
type BounceLink struct {
	OriginalID, BounceID int64
	// Details and Output go on the original's Bounced delivery row.
	Details, Output string
}

// markBounced is MarkBounced inside t.
func markBounced(ctx context.Context, t tx, now int64, l BounceLink) error {
	res, err := t.exec(ctx, `UPDATE messages SET status = ?, last_delivery_attempt = ? WHERE id = ?`, StatusBounced, now, l.OriginalID)
	if err != nil {
		return fmt.Errorf("update message %d: %w", l.OriginalID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("message %d: %w", l.OriginalID, ErrNotFound)
	}
	if _, err := t.exec(ctx, `INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, timestamp)
		VALUES (?, ?, ?, ?, ?, '', ?)`, l.OriginalID, StatusBounced, truncate(l.Details, maxDetails), truncate(l.Output, maxOutput), false, now); err != nil {
		return fmt.Errorf("insert delivery for message %d: %w", l.OriginalID, err)
	}
	if _, err := t.exec(ctx, `UPDATE messages SET bounce_for_id = ?,
		domain_id = COALESCE(domain_id, (SELECT domain_id FROM messages WHERE id = ?)) WHERE id = ?`,
		l.OriginalID, l.OriginalID, l.BounceID); err != nil {
		return fmt.Errorf("link bounce %d: %w", l.BounceID, err)
	}
	return nil
}

// SuppressionRecipient is the only suppression type Postal uses.
const SuppressionRecipient = "recipient"

// Suppression is an address a server does not send to until KeepUntil.
type Suppression struct {
	ID        int64     `json:"id"`
	ServerID  int64     `json:"server_id"`
	Type      string    `json:"type"`
	Address   string    `json:"address"`
	Reason    string    `json:"reason"`
	Timestamp time.Time `json:"timestamp"`
	KeepUntil time.Time `json:"keep_until"`
}

// NewSuppression is an entry for AddSuppressions.
type NewSuppression struct {
	ServerID  int64
	Address   string
	Reason    string
	KeepUntil time.Time
}

// ActiveSuppressions returns the server's suppression entries for addresses that
// are in force at now (keep_until later than now), keyed by lower-case
// address. Addresses are compared case-insensitively.
func (s *Store) ActiveSuppressions(ctx context.Context, serverID int64, addresses []string, now time.Time) (map[string]*Suppression, error) {
	out := map[string]*Suppression{}
	if len(addresses) == 0 {
		return out, nil
	}
	args := []any{serverID, SuppressionRecipient, now.UnixMicro()}
	for _, a := range addresses {
		args = append(args, strings.ToLower(a))
	}
	rows, err := s.query(ctx, `SELECT id, server_id, type, address, reason, timestamp, keep_until FROM suppressions
		WHERE server_id = ? AND type = ? AND keep_until > ? AND address IN (`+placeholders(len(addresses))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("load suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			v         Suppression
			ts, until int64
		)
		if err := rows.Scan(&v.ID, &v.ServerID, &v.Type, &v.Address, &v.Reason, &ts, &until); err != nil {
			return nil, fmt.Errorf("load suppressions: %w", err)
		}
		v.Timestamp, v.KeepUntil = time.UnixMicro(ts), time.UnixMicro(until)
		out[v.Address] = &v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load suppressions: %w", err)
	}
	return out, nil
}

// AddSuppressions adds (or refreshes: new reason, timestamp and keep_until)
// recipient suppressions, in one transaction. Addresses are stored lower-case.
func (s *Store) AddSuppressions(ctx context.Context, list []NewSuppression) error {
	if len(list) == 0 {
		return nil
	}
	now := s.now().UnixMicro()
	err := s.inTx(ctx, func(t tx) error { return addSuppressions(ctx, t, now, list) })
	if err != nil {
		return fmt.Errorf("add suppressions: %w", err)
	}
	return nil
}

// addSuppressions is AddSuppressions inside t.
func addSuppressions(ctx context.Context, t tx, now int64, list []NewSuppression) error {
	for _, n := range list {
		st := suppressionStatement(now, n)
		if _, err := t.exec(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("suppress %s: %w", n.Address, err)
		}
	}
	return nil
}

// suppressionStatement adds (or refreshes) the suppression n.
func suppressionStatement(now int64, n NewSuppression) statement {
	return statement{q: `INSERT INTO suppressions (server_id, type, address, reason, timestamp, keep_until)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (server_id, type, address) DO UPDATE SET reason = excluded.reason,
				timestamp = excluded.timestamp, keep_until = excluded.keep_until`,
		args: []any{n.ServerID, SuppressionRecipient, strings.ToLower(n.Address), truncate(n.Reason, maxDetails), now, n.KeepUntil.UnixMicro()}}
}

// RemoveSuppression deletes a server's suppression of address and reports
// whether there was one.
func (s *Store) RemoveSuppression(ctx context.Context, serverID int64, address string) (bool, error) {
	res, err := s.exec(ctx, `DELETE FROM suppressions WHERE server_id = ? AND type = ? AND address = ?`,
		serverID, SuppressionRecipient, strings.ToLower(strings.TrimSpace(address)))
	if err != nil {
		return false, fmt.Errorf("remove suppression of %s: %w", address, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// The Webhook type and its CRUD live in admin_webhook.go (model records are
// owned by the admin_*.go files); this file adds only what delivery needs.

// NewWebhookRequest is a webhook call to make: one event for one webhook.
type NewWebhookRequest struct {
	ServerID  int64
	WebhookID int64
	// MessageID is the message the event is about (0: a server event).
	MessageID int64
	URL       string
	Event     string
	// Payload is the event's JSON object.
	Payload string
}

// WebhookRequest is a stored webhook call, worked through the webhooks stream.
type WebhookRequest struct {
	ID         int64     `json:"id"`
	UUID       string    `json:"uuid"`
	ServerID   int64     `json:"server_id"`
	WebhookID  int64     `json:"webhook_id"`
	URL        string    `json:"url"`
	Event      string    `json:"event"`
	Payload    string    `json:"payload"`
	Attempts   int       `json:"attempts"`
	RetryAfter time.Time `json:"retry_after"`
	Error      string    `json:"error,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// InsertWebhookRequests stores requests in one transaction, each due now,
// and returns their ids in order. On error nothing was stored.
func (s *Store) InsertWebhookRequests(ctx context.Context, reqs []NewWebhookRequest) ([]int64, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	now := s.now().UnixMicro()
	var ids []int64
	err := s.inTx(ctx, func(t tx) error {
		var err error
		ids, err = insertWebhookRequests(ctx, t, now, reqs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("insert webhook requests: %w", err)
	}
	return ids, nil
}

// insertWebhookRequests is InsertWebhookRequests inside t.
func insertWebhookRequests(ctx context.Context, t tx, now int64, reqs []NewWebhookRequest) ([]int64, error) {
	ids := make([]int64, len(reqs))
	stmt, err := t.prepare(ctx, `INSERT INTO webhook_requests (uuid, server_id, webhook_id, message_id, url, event,
		payload, retry_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for i, r := range reqs {
		if err := stmt.QueryRowContext(ctx, newUUID(), r.ServerID, nullID(r.WebhookID), nullID(r.MessageID), r.URL, r.Event, r.Payload, now, now).Scan(&ids[i]); err != nil {
			return nil, fmt.Errorf("insert %s request: %w", r.Event, err)
		}
	}
	return ids, nil
}

// WebhookRequests loads webhook requests by id, in id order; missing ids are left out.
func (s *Store) WebhookRequests(ctx context.Context, ids []int64) ([]*WebhookRequest, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT id, uuid, server_id, webhook_id, url, event, payload, attempts, retry_after, error, created_at
		FROM webhook_requests WHERE id IN (`+placeholders(len(ids))+`) ORDER BY id`, int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load webhook requests: %w", err)
	}
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
			return nil, fmt.Errorf("load webhook requests: %w", err)
		}
		r.WebhookID, r.Error = hook.Int64, errText.String
		r.RetryAfter, r.CreatedAt = time.UnixMicro(retry), time.UnixMicro(created)
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load webhook requests: %w", err)
	}
	return out, nil
}

// IPPool, IPAddress, IPPoolRule and their CRUD live in admin_ippool.go; this
// file adds only the routing query delivery needs.

// IPPoolRouting is everything needed to pick a server's source address:
// its rules and its organisation's (each newest first, the order Postal
// tries them), its own pool, the default pool, and every pool's addresses.
type IPPoolRouting struct {
	ServerRules       []*IPPoolRule
	OrganizationRules []*IPPoolRule
	// ServerPoolID is the server's pool, 0 when none.
	ServerPoolID int64
	// DefaultPoolID is the pool marked default (lowest id), 0 when none.
	DefaultPoolID int64
	// Addresses maps a pool id to its addresses.
	Addresses map[int64][]*IPAddress
}

// IPPoolRouting loads the routing data of a server; an unknown server wraps ErrNotFound.
func (s *Store) IPPoolRouting(ctx context.Context, serverID int64) (*IPPoolRouting, error) {
	var (
		orgID  int64
		poolID sql.NullInt64
	)
	err := s.queryRow(ctx, `SELECT organization_id, ip_pool_id FROM servers WHERE id = ?`, serverID).Scan(&orgID, &poolID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("server %d: %w", serverID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("ip pool routing of server %d: %w", serverID, err)
	}
	r := &IPPoolRouting{ServerPoolID: poolID.Int64, Addresses: map[int64][]*IPAddress{}}
	pools, err := s.IPPools(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		if p.Default && (r.DefaultPoolID == 0 || p.ID < r.DefaultPoolID) {
			r.DefaultPoolID = p.ID
		}
	}
	if r.ServerRules, err = s.IPPoolRules(ctx, 0, serverID); err != nil {
		return nil, err
	}
	if r.OrganizationRules, err = s.IPPoolRules(ctx, orgID, 0); err != nil {
		return nil, err
	}
	newestFirst(r.ServerRules)
	newestFirst(r.OrganizationRules)
	addrs, err := s.IPAddresses(ctx, 0)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		r.Addresses[a.PoolID] = append(r.Addresses[a.PoolID], a)
	}
	return r, nil
}

// newestFirst orders rules by creation, newest first (ties: higher id first).
func newestFirst(rules []*IPPoolRule) {
	sort.SliceStable(rules, func(i, j int) bool {
		if !rules[i].CreatedAt.Equal(rules[j].CreatedAt) {
			return rules[i].CreatedAt.After(rules[j].CreatedAt)
		}
		return rules[i].ID > rules[j].ID
	})
}
