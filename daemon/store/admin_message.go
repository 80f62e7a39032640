package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Operator actions on one message (postalctl message, the TUI). Each is one
// transaction that checks the message's state and changes it only when the
// check still holds, so two operators acting at once cannot both win. None of
// them touches Redis: the caller dispatches the returned queued row.

// Errors the message actions wrap.
var (
	// ErrNotQueued: the action needs a queued row and the message has none.
	ErrNotQueued = errors.New("message is not queued")
	// ErrLocked: a worker is delivering the message right now.
	ErrLocked = errors.New("message is being delivered right now")
	// ErrNotRetryable: the message is neither queued nor failed.
	ErrNotRetryable = errors.New("message is neither queued nor failed")
)

// Caps of MessageFilter.
const (
	// MaxMessagePage is the largest page SearchMessages returns.
	MaxMessagePage = 1000
	// MaxFilterText caps each text field of a filter (bytes).
	MaxFilterText = 512
)

// MessageFilter selects messages for SearchMessages. Zero fields do not
// filter. Text fields match exactly, except Subject, which matches a
// substring (case-sensitive on PostgreSQL, ASCII case-insensitive on
// SQLite).
type MessageFilter struct {
	ServerID int64  `json:"server_id,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Status   string `json:"status,omitempty"`
	// Held keeps only held messages (the "held" preset).
	Held    bool   `json:"held,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Subject string `json:"subject,omitempty"`
	Tag     string `json:"tag,omitempty"`
	// Since and Until bound the message timestamp: Since <= t < Until.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Before is the keyset cursor: only ids below it (0: from the newest).
	Before int64 `json:"before,omitempty"`
	// Limit is the page size: 1..MaxMessagePage, default 50.
	Limit int `json:"limit,omitempty"`
}

// Validate reports the first field out of bounds.
func (f MessageFilter) Validate() error {
	for name, v := range map[string]string{"from": f.From, "to": f.To, "subject": f.Subject, "tag": f.Tag,
		"scope": f.Scope, "status": f.Status} {
		if len(v) > MaxFilterText {
			return fmt.Errorf("filter %s is %d bytes, more than %d", name, len(v), MaxFilterText)
		}
	}
	if f.Limit < 0 || f.Limit > MaxMessagePage {
		return fmt.Errorf("page size %d is not between 1 and %d", f.Limit, MaxMessagePage)
	}
	if f.Before < 0 {
		return fmt.Errorf("cursor %d is negative", f.Before)
	}
	return nil
}

// MessagePage is one page of SearchMessages, newest first.
type MessagePage struct {
	Messages []*Message `json:"messages"`
	// Next is the cursor of the following page (MessageFilter.Before), 0
	// when this page is the last.
	Next int64 `json:"next,omitempty"`
}

// SearchMessages returns one page of the messages f selects, newest (highest
// id) first. It pages by id (keyset), so every page costs the same however
// deep it is; the indexes of migration 0005 make each filter an index range
// scan. An invalid filter or a failed query returns a wrapped error.
func (s *Store) SearchMessages(ctx context.Context, f MessageFilter) (MessagePage, error) {
	if err := f.Validate(); err != nil {
		return MessagePage{}, fmt.Errorf("search messages: %w", err)
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	if f.ServerID != 0 {
		add("server_id = ?", f.ServerID)
	}
	if f.Scope != "" {
		add("scope = ?", f.Scope)
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.Held {
		add("held = ?", true)
	}
	if f.From != "" {
		add("mail_from = ?", f.From)
	}
	if f.To != "" {
		add("rcpt_to = ?", f.To)
	}
	if f.Tag != "" {
		add("tag = ?", f.Tag)
	}
	if f.Subject != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Subject)
		add(`subject LIKE ? ESCAPE '\'`, "%"+esc+"%")
	}
	if !f.Since.IsZero() {
		add("timestamp >= ?", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		add("timestamp < ?", f.Until.UnixMicro())
	}
	cond := ""
	if len(where) > 0 {
		cond = ` WHERE ` + strings.Join(where, " AND ")
	}
	// Newest first is id order. With a lower time bound the rows in range
	// are few next to the table: pick their ids through the timestamp index
	// and sort those (id + 0 keeps both planners off the id-order walk,
	// which would pass every newer row first), then read the page's rows.
	// Otherwise walk ids downwards.
	q := `SELECT ` + messageColumns + ` FROM messages` + cond + ` ORDER BY id DESC LIMIT ?`
	if !f.Since.IsZero() {
		q = `SELECT ` + messageColumns + ` FROM messages WHERE id IN (SELECT id FROM messages` + cond +
			` ORDER BY id + 0 DESC LIMIT ?) ORDER BY id DESC`
	}
	args = append(args, f.Limit+1)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return MessagePage{}, fmt.Errorf("search messages: %w", err)
	}
	defer rows.Close()
	page := MessagePage{Messages: []*Message{}}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return MessagePage{}, fmt.Errorf("search messages: %w", err)
		}
		page.Messages = append(page.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return MessagePage{}, fmt.Errorf("search messages: %w", err)
	}
	if len(page.Messages) > f.Limit {
		page.Messages = page.Messages[:f.Limit]
		page.Next = page.Messages[f.Limit-1].ID
	}
	return page, nil
}

// queuedState reads the message's status and held flag and its queued row,
// if any, inside t. An unknown message wraps ErrNotFound.
func queuedState(ctx context.Context, t tx, id int64) (status string, held bool, q *QueuedMessage, err error) {
	err = t.queryRow(ctx, `SELECT status, held FROM messages WHERE id = ?`, id).Scan(&status, &held)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", false, nil, fmt.Errorf("message %d: %w", id, err)
	}
	q, err = scanQueued(t.queryRow(ctx, `SELECT `+queuedColumns+` FROM queued_messages WHERE message_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return status, held, nil, nil
	}
	if err != nil {
		return "", false, nil, fmt.Errorf("queued row of message %d: %w", id, err)
	}
	return status, held, q, nil
}

// checkUnlocked wraps ErrLocked when a worker holds q's lock at now.
func checkUnlocked(q *QueuedMessage, id int64, now time.Time) error {
	if q != nil && q.LockedBy != "" && q.LockedUntil.After(now) {
		return fmt.Errorf("message %d (locked by %s until %s): %w", id, q.LockedBy, q.LockedUntil.UTC().Format(time.RFC3339), ErrLocked)
	}
	return nil
}

// unqueue deletes queued row q unless a worker took its lock since it was
// read (compare-and-set on the lock), which wraps ErrLocked.
func unqueue(ctx context.Context, t tx, q *QueuedMessage, id int64, now time.Time) error {
	res, err := t.exec(ctx, `DELETE FROM queued_messages WHERE id = ? AND (locked_by IS NULL OR locked_until IS NULL OR locked_until <= ?)`,
		q.ID, now.UnixMicro())
	if err != nil {
		return fmt.Errorf("unqueue message %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("message %d: %w", id, ErrLocked)
	}
	return nil
}

// addDelivery records an operator's action as a delivery row.
func addDelivery(ctx context.Context, t tx, id int64, status, details string, now int64) error {
	_, err := t.exec(ctx, `INSERT INTO deliveries (message_id, status, details, output, sent_with_ssl, log_id, time, timestamp)
		VALUES (?, ?, ?, '', ?, '', 0, ?)`, id, status, details, false, now)
	if err != nil {
		return fmt.Errorf("record action on message %d: %w", id, err)
	}
	return nil
}

// RetryNow makes a message due now. A queued message's row becomes due now
// (attempts kept); a SoftFail or HardFail message that is no longer queued
// gets a new queued row, due now. It returns the queued row to dispatch. An
// unknown message wraps ErrNotFound, one a worker holds wraps ErrLocked, a
// held message wraps ErrConflict (release it instead) and any other wraps
// ErrNotRetryable.
func (s *Store) RetryNow(ctx context.Context, id int64) (*QueuedMessage, error) {
	now := s.now()
	var out *QueuedMessage
	err := s.inTx(ctx, func(t tx) error {
		status, held, q, err := queuedState(ctx, t, id)
		if err != nil {
			return err
		}
		if held {
			return fmt.Errorf("message %d is held, release it instead: %w", id, ErrConflict)
		}
		if err := checkUnlocked(q, id, now); err != nil {
			return err
		}
		if q != nil {
			out, err = scanQueued(t.queryRow(ctx, `UPDATE queued_messages SET retry_after = ?, locked_by = NULL, locked_until = NULL,
				updated_at = ? WHERE id = ? AND (locked_by IS NULL OR locked_until IS NULL OR locked_until <= ?) RETURNING `+queuedColumns,
				now.UnixMicro(), now.UnixMicro(), q.ID, now.UnixMicro()))
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("message %d: %w", id, ErrLocked)
			}
			if err != nil {
				return fmt.Errorf("make message %d due: %w", id, err)
			}
			return nil
		}
		if status != StatusSoftFail && status != StatusHardFail {
			return fmt.Errorf("message %d (status %s): %w", id, status, ErrNotRetryable)
		}
		out, err = insertQueued(ctx, t, id, now.UnixMicro(), false)
		if err != nil {
			return err
		}
		_, err = t.exec(ctx, `UPDATE messages SET status = ? WHERE id = ?`, StatusPending, id)
		if err != nil {
			return fmt.Errorf("mark message %d pending: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retry message: %w", err)
	}
	return out, nil
}

// insertQueued queues message id, due at now, reading its scope and domain
// from the message row.
func insertQueued(ctx context.Context, t tx, id, now int64, manual bool) (*QueuedMessage, error) {
	var (
		serverID    int64
		scope, rcpt string
	)
	if err := t.queryRow(ctx, `SELECT server_id, scope, rcpt_to FROM messages WHERE id = ?`, id).Scan(&serverID, &scope, &rcpt); err != nil {
		return nil, fmt.Errorf("message %d: %w", id, err)
	}
	domain := ""
	if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
		domain = strings.ToLower(rcpt[i+1:])
	}
	q, err := scanQueued(t.queryRow(ctx, `INSERT INTO queued_messages (message_id, server_id, scope, domain, retry_after,
		manual, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+queuedColumns,
		id, serverID, scope, domain, now, manual, now, now))
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("message %d is already queued: %w", id, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("queue message %d: %w", id, err)
	}
	return q, nil
}

// HoldMessage takes a queued message out of the queue and holds it (status
// Held, no expiry) until an operator releases it (ReleaseHeld) or cancels it
// (CancelMessage). An unknown message wraps ErrNotFound, one without a queued
// row ErrNotQueued, one a worker holds ErrLocked.
func (s *Store) HoldMessage(ctx context.Context, id int64) error {
	now := s.now()
	err := s.inTx(ctx, func(t tx) error {
		_, _, q, err := queuedState(ctx, t, id)
		if err != nil {
			return err
		}
		if q == nil {
			return fmt.Errorf("message %d: %w", id, ErrNotQueued)
		}
		if err := checkUnlocked(q, id, now); err != nil {
			return err
		}
		if err := unqueue(ctx, t, q, id, now); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE messages SET status = ?, held = ?, hold_expiry = NULL WHERE id = ?`, StatusHeld, true, id); err != nil {
			return fmt.Errorf("hold message %d: %w", id, err)
		}
		return addDelivery(ctx, t, id, StatusHeld, "Held by an operator.", now.UnixMicro())
	})
	if err != nil {
		return fmt.Errorf("hold message: %w", err)
	}
	return nil
}

// markCancelled makes message id HoldCancelled (no longer held) with
// details and a delivery row saying so; with onlyHeld, only while it is
// still Held. It reports whether the message changed.
func markCancelled(ctx context.Context, t tx, id int64, details string, onlyHeld bool, now int64) (bool, error) {
	q := `UPDATE messages SET status = ?, held = ?, hold_expiry = NULL, details = ? WHERE id = ?`
	args := []any{StatusHoldCancelled, false, details, id}
	if onlyHeld {
		q += ` AND status = ?`
		args = append(args, StatusHeld)
	}
	r, err := t.exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("cancel message %d: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return false, nil
	}
	return true, addDelivery(ctx, t, id, StatusHoldCancelled, details, now)
}

// CancelMessage removes a queued or held message from the queue for good:
// its queued row is deleted and it becomes HoldCancelled with a delivery row
// saying an operator cancelled it. An unknown message wraps ErrNotFound, one
// that is neither queued nor held ErrNotQueued, one a worker holds ErrLocked.
func (s *Store) CancelMessage(ctx context.Context, id int64) error {
	now := s.now()
	err := s.inTx(ctx, func(t tx) error {
		status, held, q, err := queuedState(ctx, t, id)
		if err != nil {
			return err
		}
		if q == nil && !held && status != StatusHeld {
			return fmt.Errorf("message %d (status %s): %w", id, status, ErrNotQueued)
		}
		if err := checkUnlocked(q, id, now); err != nil {
			return err
		}
		if q != nil {
			if err := unqueue(ctx, t, q, id, now); err != nil {
				return err
			}
		}
		_, err = markCancelled(ctx, t, id, "Removed from the queue by an operator.", false, now.UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("cancel message: %w", err)
	}
	return nil
}

// DeleteMessage deletes a message with its deliveries and queued row (its
// raw body stays until retention: other recipients may share it). An
// unknown message wraps ErrNotFound, one a worker holds ErrLocked.
func (s *Store) DeleteMessage(ctx context.Context, id int64) error {
	now := s.now()
	err := s.inTx(ctx, func(t tx) error {
		_, _, q, err := queuedState(ctx, t, id)
		if err != nil {
			return err
		}
		if err := checkUnlocked(q, id, now); err != nil {
			return err
		}
		if q != nil {
			if err := unqueue(ctx, t, q, id, now); err != nil {
				return err
			}
		}
		for _, stmt := range []string{`DELETE FROM deliveries WHERE message_id = ?`,
			`DELETE FROM messages WHERE id = ?`} {
			if _, err := t.exec(ctx, stmt, id); err != nil {
				return fmt.Errorf("delete message %d: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete message: %w", err)
	}
	return nil
}
