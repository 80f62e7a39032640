package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Webhook is an HTTP callback of a server for all events or a list of them.
type Webhook struct {
	ID        int64  `json:"id"`
	UUID      string `json:"uuid"`
	ServerID  int64  `json:"server_id"`
	Name      string `json:"name"`
	URL       string `json:"url"`
	AllEvents bool   `json:"all_events"`
	// Events lists the subscribed events, sorted; empty when AllEvents.
	Events     []string  `json:"events"`
	Enabled    bool      `json:"enabled"`
	Sign       bool      `json:"sign"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// NewWebhook holds what a webhook is created with: AllEvents, or a
// non-empty Events list.
type NewWebhook struct {
	Name      string
	URL       string
	AllEvents bool
	Events    []string
	Enabled   bool
	Sign      bool
}

// CreateWebhook adds a webhook and its event subscriptions to a server in
// one transaction. It refuses an empty URL, and a webhook with neither
// AllEvents nor events; duplicate events are stored once.
func (s *Store) CreateWebhook(ctx context.Context, serverID int64, nw NewWebhook) (*Webhook, error) {
	if nw.URL == "" {
		return nil, errors.New("create webhook: URL is empty")
	}
	if !nw.AllEvents && len(nw.Events) == 0 {
		return nil, errors.New("create webhook: no events (give a list or all events)")
	}
	now := s.now().UnixMicro()
	var id int64
	err := s.inTx(ctx, func(t tx) error {
		err := t.queryRow(ctx, `INSERT INTO webhooks (uuid, server_id, name, url, all_events, enabled, sign, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			newUUID(), serverID, nw.Name, nw.URL, nw.AllEvents, nw.Enabled, nw.Sign, now, now).Scan(&id)
		if err != nil {
			return fmt.Errorf("create webhook: %w", err)
		}
		if nw.AllEvents {
			return nil
		}
		seen := map[string]bool{}
		for _, ev := range nw.Events {
			if seen[ev] {
				continue
			}
			seen[ev] = true
			if _, err := t.exec(ctx, `INSERT INTO webhook_events (webhook_id, event, created_at) VALUES (?, ?, ?)`,
				id, ev, now); err != nil {
				return fmt.Errorf("create webhook event %s: %w", ev, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	hooks, err := s.webhooks(ctx, `w.id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(hooks) == 0 {
		return nil, fmt.Errorf("webhook %d: %w", id, ErrNotFound)
	}
	return hooks[0], nil
}

// Webhooks lists a server's webhooks by id, each with its events.
func (s *Store) Webhooks(ctx context.Context, serverID int64) ([]*Webhook, error) {
	return s.webhooks(ctx, `w.server_id = ?`, serverID)
}

func (s *Store) webhooks(ctx context.Context, where string, args ...any) ([]*Webhook, error) {
	rows, err := s.query(ctx, `SELECT w.id, w.uuid, w.server_id, w.name, w.url, w.all_events, w.enabled, w.sign,
		w.last_used_at, w.created_at, w.updated_at, e.event
		FROM webhooks w LEFT JOIN webhook_events e ON e.webhook_id = w.id WHERE `+where+` ORDER BY w.id, e.event`, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	out := []*Webhook{}
	for rows.Next() {
		var (
			w                Webhook
			used             sql.NullInt64
			created, updated int64
			event            sql.NullString
		)
		if err := rows.Scan(&w.ID, &w.UUID, &w.ServerID, &w.Name, &w.URL, &w.AllEvents, &w.Enabled, &w.Sign,
			&used, &created, &updated, &event); err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].ID == w.ID {
			out[n-1].Events = append(out[n-1].Events, event.String)
			continue
		}
		w.LastUsedAt = fromMicros(used)
		w.CreatedAt, w.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
		w.Events = []string{}
		if event.Valid {
			w.Events = append(w.Events, event.String)
		}
		out = append(out, &w)
	}
	return out, rows.Err()
}

// DeleteWebhook removes the webhook with uuid from server serverID, with its
// subscriptions and pending requests (by cascade). A webhook of another
// server, or an unknown one, wraps ErrNotFound.
func (s *Store) DeleteWebhook(ctx context.Context, serverID int64, uuid string) error {
	res, err := s.exec(ctx, `DELETE FROM webhooks WHERE uuid = ? AND server_id = ?`, uuid, serverID)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", uuid, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("webhook %s: %w", strings.TrimSpace(uuid), ErrNotFound)
	}
	return nil
}
