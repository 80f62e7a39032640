package store

// This file holds the queries of the HTTP API v1 (daemon/api): credential
// authentication, messages scoped to a server, and Idempotency-Key records.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIAuth is what an API key authenticates as: the credential, its server,
// and whether the server's organisation is suspended.
type APIAuth struct {
	Credential            *Credential
	Server                *Server
	OrganizationSuspended bool
}

// APICredential finds the API credential whose key is key (looked up by the
// key's SHA-256, so timing reveals nothing about stored keys) with its
// server and organisation. SMTP and SMTP-IP credentials never match. An
// unknown key wraps ErrNotFound.
func (s *Store) APICredential(ctx context.Context, key string) (*APIAuth, error) {
	c, err := s.CredentialByKey(ctx, CredentialAPI, key)
	if err != nil {
		return nil, err
	}
	srv, err := s.ServerByID(ctx, c.ServerID)
	if err != nil {
		return nil, err
	}
	var orgSuspended sql.NullInt64
	if err := s.queryRow(ctx, `SELECT suspended_at FROM organizations WHERE id = ?`, srv.OrganizationID).Scan(&orgSuspended); err != nil {
		return nil, fmt.Errorf("organization %d: %w", srv.OrganizationID, err)
	}
	return &APIAuth{Credential: c, Server: srv, OrganizationSuspended: orgSuspended.Valid}, nil
}

// Inspection is a message's spam and threat inspection result.
type Inspection struct {
	Inspected     bool    `json:"inspected"`
	Spam          bool    `json:"spam"`
	SpamScore     float64 `json:"spam_score"`
	Threat        bool    `json:"threat"`
	ThreatDetails string  `json:"threat_details,omitempty"`
	// Skipped says why the message went (partly) unscanned, "" if it did
	// not (see NewInspection).
	Skipped string `json:"skipped,omitempty"`
}

// ServerMessage looks up message id of server serverID with its inspection
// result. A message of another server, or none, wraps ErrNotFound.
func (s *Store) ServerMessage(ctx context.Context, serverID, id int64) (*Message, *Inspection, error) {
	var (
		in      Inspection
		details sql.NullString
	)
	row := s.queryRow(ctx, `SELECT `+messageColumns+`, inspected, spam, spam_score, threat, threat_details
		FROM messages WHERE id = ? AND server_id = ?`, id, serverID)
	m, err := scanMessage(scanTail{row, []any{&in.Inspected, &in.Spam, &in.SpamScore, &in.Threat, &details}})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("message %d: %w", id, err)
	}
	in.ThreatDetails = details.String
	return m, &in, nil
}

// scanTail scans extra columns after those scanMessage reads.
type scanTail struct {
	sc   interface{ Scan(...any) error }
	tail []any
}

func (t scanTail) Scan(dest ...any) error { return t.sc.Scan(append(dest, t.tail...)...) }

// MessagesOfRaw lists the messages stored with raw message rawID, in id
// order (an API submission's recipients).
func (s *Store) MessagesOfRaw(ctx context.Context, rawID int64) ([]*Message, error) {
	rows, err := s.query(ctx, `SELECT `+messageColumns+` FROM messages WHERE raw_message_id = ? ORDER BY id`, rawID)
	if err != nil {
		return nil, fmt.Errorf("messages of raw %d: %w", rawID, err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("messages of raw %d: %w", rawID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// IdempotencyWindow is how long an Idempotency-Key is remembered.
const IdempotencyWindow = 24 * time.Hour

// idempotencyAbandoned is how long a reservation may stay pending before a
// retry may take it over: its request died before storing anything (a
// submission that commits marks the row done in the same transaction).
const idempotencyAbandoned = 5 * time.Minute

// Idempotency is one Idempotency-Key record.
type Idempotency struct {
	ID          int64
	ServerID    int64
	Key         string
	Endpoint    string
	RequestHash string
	// RawMessageID is the stored submission (0: none, or no recipients).
	RawMessageID int64
	// Done is set once the request's messages are stored.
	Done      bool
	CreatedAt time.Time
}

// ReserveIdempotencyKey reserves key for a request of server serverID. It
// returns (record, true) when the caller now owns the key and must either
// store its submission with Submission.IdempotencyID = record.ID, call
// CompleteIdempotencyKey, or ReleaseIdempotencyKey. When the key is already
// taken it returns the existing record and false: Done tells whether its
// request finished. Records older than IdempotencyWindow, and pending ones
// abandoned for minutes, are replaced.
func (s *Store) ReserveIdempotencyKey(ctx context.Context, serverID int64, key, endpoint, requestHash string) (*Idempotency, bool, error) {
	now := s.now()
	if _, err := s.exec(ctx, `DELETE FROM api_idempotency WHERE server_id = ? AND idem_key = ?
		AND (created_at < ? OR (done = FALSE AND created_at < ?))`,
		serverID, key, now.Add(-IdempotencyWindow).UnixMicro(), now.Add(-idempotencyAbandoned).UnixMicro()); err != nil {
		return nil, false, fmt.Errorf("expire idempotency key: %w", err)
	}
	var id int64
	err := s.queryRow(ctx, `INSERT INTO api_idempotency (server_id, idem_key, endpoint, request_hash, done, created_at)
		VALUES (?, ?, ?, ?, FALSE, ?) ON CONFLICT (server_id, idem_key) DO NOTHING RETURNING id`,
		serverID, key, endpoint, requestHash, now.UnixMicro()).Scan(&id)
	if err == nil {
		return &Idempotency{ID: id, ServerID: serverID, Key: key, Endpoint: endpoint, RequestHash: requestHash,
			CreatedAt: time.UnixMicro(now.UnixMicro())}, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("reserve idempotency key: %w", err)
	}
	var (
		rec     = Idempotency{ServerID: serverID, Key: key}
		raw     sql.NullInt64
		created int64
	)
	err = s.queryRow(ctx, `SELECT id, endpoint, request_hash, raw_message_id, done, created_at FROM api_idempotency
		WHERE server_id = ? AND idem_key = ?`, serverID, key).Scan(&rec.ID, &rec.Endpoint, &rec.RequestHash, &raw, &rec.Done, &created)
	if errors.Is(err, sql.ErrNoRows) {
		// Released between our insert and this read: the caller may retry.
		return nil, false, fmt.Errorf("idempotency key released concurrently: %w", ErrConflict)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read idempotency key: %w", err)
	}
	rec.RawMessageID, rec.CreatedAt = raw.Int64, time.UnixMicro(created)
	return &rec, false, nil
}

// CompleteIdempotencyKey marks a reservation done without a submission (a
// request that stored nothing, such as send/raw with no recipients).
func (s *Store) CompleteIdempotencyKey(ctx context.Context, id int64) error {
	if _, err := s.exec(ctx, `UPDATE api_idempotency SET done = TRUE WHERE id = ?`, id); err != nil {
		return fmt.Errorf("complete idempotency key %d: %w", id, err)
	}
	return nil
}

// ReleaseIdempotencyKey removes a reservation whose request failed before
// storing anything, so a retry runs it again. A done record is kept.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, id int64) error {
	if _, err := s.exec(ctx, `DELETE FROM api_idempotency WHERE id = ? AND done = FALSE`, id); err != nil {
		return fmt.Errorf("release idempotency key %d: %w", id, err)
	}
	return nil
}

// PruneIdempotencyKeys deletes records created before before and returns
// how many it deleted.
func (s *Store) PruneIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM api_idempotency WHERE created_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// SetDomainUseForAny sets whether a verified domain authorises any From
// address of its server (Postal's use_for_any). An unknown id wraps
// ErrNotFound.
func (s *Store) SetDomainUseForAny(ctx context.Context, id int64, useForAny bool) error {
	res, err := s.exec(ctx, `UPDATE domains SET use_for_any = ?, updated_at = ? WHERE id = ?`, useForAny, s.now().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("domain %d use_for_any: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("domain %d: %w", id, ErrNotFound)
	}
	return nil
}

// SetOrganizationSuspended suspends (with reason) or unsuspends an
// organisation; every server of a suspended organisation is refused by the
// API as ServerSuspended. An unknown id wraps ErrNotFound.
func (s *Store) SetOrganizationSuspended(ctx context.Context, id int64, suspended bool, reason string) error {
	now := s.now().UnixMicro()
	var at, why any
	if suspended {
		at, why = now, nullString(reason)
	}
	res, err := s.exec(ctx, `UPDATE organizations SET suspended_at = ?, suspension_reason = ?, updated_at = ? WHERE id = ?`,
		at, why, now, id)
	if err != nil {
		return fmt.Errorf("suspend organization %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("organization %d: %w", id, ErrNotFound)
	}
	return nil
}
