package store

import (
	"context"
	"fmt"
	"strings"
)

// ServerSettings are the server fields an administrator may change. A nil
// field is left as it is.
type ServerSettings struct {
	Name *string
	// Mode is ModeLive or ModeDevelopment.
	Mode *string
	// SendLimit is the number of messages the server may send per hour;
	// a pointer to 0 removes the limit.
	SendLimit               *int64
	MessageRetentionDays    *int
	RawMessageRetentionDays *int
	RawMessageRetentionSize *int
	SpamThreshold           *float64
	SpamFailureThreshold    *float64
	// OutboundSpamThreshold turns on the inspection of outgoing mail with
	// that threshold; NoOutboundSpamThreshold turns it off.
	OutboundSpamThreshold   *float64
	NoOutboundSpamThreshold bool
	PrivacyMode             *bool
	AllowSender             *bool
	LogSMTPData             *bool
	RequireTLS              *bool
}

// UpdateServer applies every non-nil field of u to the server with id in
// one statement and returns the updated server. An unknown id wraps
// ErrNotFound; an invalid mode or a negative number is refused before
// anything is written.
func (s *Store) UpdateServer(ctx context.Context, id int64, u ServerSettings) (*Server, error) {
	var sets []string
	var args []any
	add := func(col string, v any) {
		sets = append(sets, col+" = ?")
		args = append(args, v)
	}
	if u.Name != nil {
		if strings.TrimSpace(*u.Name) == "" {
			return nil, fmt.Errorf("update server %d: name is empty", id)
		}
		add("name", *u.Name)
	}
	if u.Mode != nil {
		if *u.Mode != ModeLive && *u.Mode != ModeDevelopment {
			return nil, fmt.Errorf("update server %d: mode %q is not Live or Development", id, *u.Mode)
		}
		add("mode", *u.Mode)
	}
	if u.SendLimit != nil {
		switch {
		case *u.SendLimit < 0:
			return nil, fmt.Errorf("update server %d: negative send limit %d", id, *u.SendLimit)
		case *u.SendLimit == 0:
			add("send_limit", nil)
		default:
			add("send_limit", *u.SendLimit)
		}
	}
	for _, c := range []struct {
		col string
		v   *int
	}{{"message_retention_days", u.MessageRetentionDays}, {"raw_message_retention_days", u.RawMessageRetentionDays},
		{"raw_message_retention_size", u.RawMessageRetentionSize}} {
		if c.v == nil {
			continue
		}
		if *c.v < 0 {
			return nil, fmt.Errorf("update server %d: negative %s %d", id, c.col, *c.v)
		}
		add(c.col, *c.v)
	}
	for _, c := range []struct {
		col string
		v   *float64
	}{{"spam_threshold", u.SpamThreshold}, {"spam_failure_threshold", u.SpamFailureThreshold},
		{"outbound_spam_threshold", u.OutboundSpamThreshold}} {
		if c.v != nil {
			add(c.col, *c.v)
		}
	}
	if u.NoOutboundSpamThreshold {
		if u.OutboundSpamThreshold != nil {
			return nil, fmt.Errorf("update server %d: an outbound spam threshold both set and removed", id)
		}
		add("outbound_spam_threshold", nil)
	}
	for _, c := range []struct {
		col string
		v   *bool
	}{{"privacy_mode", u.PrivacyMode}, {"allow_sender", u.AllowSender}, {"log_smtp_data", u.LogSMTPData},
		{"require_tls", u.RequireTLS}} {
		if c.v != nil {
			add(c.col, *c.v)
		}
	}
	add("updated_at", s.now().UnixMicro())
	args = append(args, id)
	res, err := s.exec(ctx, `UPDATE servers SET `+strings.Join(sets, ", ")+` WHERE id = ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("update server %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("server %d: %w", id, ErrNotFound)
	}
	return s.ServerByID(ctx, id)
}

// SuspendServer marks a server suspended now with reason (which may be
// empty). Suspending a suspended server keeps its first suspension time
// and replaces the reason. An unknown id wraps ErrNotFound.
func (s *Store) SuspendServer(ctx context.Context, id int64, reason string) (*Server, error) {
	now := s.now().UnixMicro()
	res, err := s.exec(ctx, `UPDATE servers SET suspended_at = COALESCE(suspended_at, ?), suspension_reason = ?, updated_at = ?
		WHERE id = ?`, now, nullString(reason), now, id)
	if err != nil {
		return nil, fmt.Errorf("suspend server %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("server %d: %w", id, ErrNotFound)
	}
	return s.ServerByID(ctx, id)
}

// UnsuspendServer lifts a server's suspension (a no-op when it is not
// suspended). An unknown id wraps ErrNotFound.
func (s *Store) UnsuspendServer(ctx context.Context, id int64) (*Server, error) {
	res, err := s.exec(ctx, `UPDATE servers SET suspended_at = NULL, suspension_reason = NULL, updated_at = ? WHERE id = ?`,
		s.now().UnixMicro(), id)
	if err != nil {
		return nil, fmt.Errorf("unsuspend server %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("server %d: %w", id, ErrNotFound)
	}
	return s.ServerByID(ctx, id)
}

// DeleteServer removes a server and, by cascade, everything it owns
// (domains, credentials, routes, endpoints, webhooks, messages, ...), in
// one statement. An unknown id wraps ErrNotFound.
func (s *Store) DeleteServer(ctx context.Context, id int64) error {
	res, err := s.exec(ctx, `DELETE FROM servers WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete server %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("server %d: %w", id, ErrNotFound)
	}
	return nil
}
