package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// HTTP endpoint encodings and formats, as Postal names them.
const (
	EncodingBodyAsJSON = "BodyAsJSON"
	EncodingFormData   = "FormData"
	FormatHash         = "Hash"
	FormatRawMessage   = "RawMessage"
)

// SMTP endpoint TLS modes, as Postal names them.
const (
	SSLModeNone     = "None"
	SSLModeAuto     = "Auto"
	SSLModeSTARTTLS = "STARTTLS"
	SSLModeTLS      = "TLS"
)

// HTTPEndpoint is where a route posts incoming mail.
type HTTPEndpoint struct {
	ID                 int64  `json:"id"`
	UUID               string `json:"uuid"`
	ServerID           int64  `json:"server_id"`
	Name               string `json:"name"`
	URL                string `json:"url"`
	Encoding           string `json:"encoding"`
	Format             string `json:"format"`
	StripReplies       bool   `json:"strip_replies"`
	IncludeAttachments bool   `json:"include_attachments"`
	// Timeout is in seconds (5 to 60).
	Timeout    int       `json:"timeout"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// SMTPEndpoint is an SMTP server a route relays incoming mail to.
type SMTPEndpoint struct {
	ID         int64     `json:"id"`
	UUID       string    `json:"uuid"`
	ServerID   int64     `json:"server_id"`
	Name       string    `json:"name"`
	Hostname   string    `json:"hostname"`
	Port       int       `json:"port"`
	SSLMode    string    `json:"ssl_mode"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// AddressEndpoint is an e-mail address a route forwards incoming mail to.
type AddressEndpoint struct {
	ID         int64     `json:"id"`
	UUID       string    `json:"uuid"`
	ServerID   int64     `json:"server_id"`
	Address    string    `json:"address"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// RouteByID returns the route with id; none wraps ErrNotFound.
func (s *Store) RouteByID(ctx context.Context, id int64) (*Route, error) {
	return s.route(ctx, `r.id = ?`, id)
}

// HTTPEndpointByID returns the HTTP endpoint with id; none wraps
// ErrNotFound.
func (s *Store) HTTPEndpointByID(ctx context.Context, id int64) (*HTTPEndpoint, error) {
	var e HTTPEndpoint
	var used sql.NullInt64
	err := s.queryRow(ctx, `SELECT id, uuid, server_id, name, url, encoding, format, strip_replies, include_attachments,
		timeout, last_used_at FROM http_endpoints WHERE id = ?`, id).Scan(&e.ID, &e.UUID, &e.ServerID, &e.Name, &e.URL,
		&e.Encoding, &e.Format, &e.StripReplies, &e.IncludeAttachments, &e.Timeout, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("HTTP endpoint %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("HTTP endpoint %d: %w", id, err)
	}
	if used.Valid {
		e.LastUsedAt = time.UnixMicro(used.Int64)
	}
	return &e, nil
}

// SMTPEndpointByID returns the SMTP endpoint with id; none wraps
// ErrNotFound.
func (s *Store) SMTPEndpointByID(ctx context.Context, id int64) (*SMTPEndpoint, error) {
	var e SMTPEndpoint
	var used sql.NullInt64
	err := s.queryRow(ctx, `SELECT id, uuid, server_id, name, hostname, port, ssl_mode, last_used_at
		FROM smtp_endpoints WHERE id = ?`, id).Scan(&e.ID, &e.UUID, &e.ServerID, &e.Name, &e.Hostname, &e.Port,
		&e.SSLMode, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("SMTP endpoint %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("SMTP endpoint %d: %w", id, err)
	}
	if used.Valid {
		e.LastUsedAt = time.UnixMicro(used.Int64)
	}
	return &e, nil
}

// AddressEndpointByID returns the address endpoint with id; none wraps
// ErrNotFound.
func (s *Store) AddressEndpointByID(ctx context.Context, id int64) (*AddressEndpoint, error) {
	var e AddressEndpoint
	var used sql.NullInt64
	err := s.queryRow(ctx, `SELECT id, uuid, server_id, address, last_used_at FROM address_endpoints WHERE id = ?`, id).
		Scan(&e.ID, &e.UUID, &e.ServerID, &e.Address, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("address endpoint %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("address endpoint %d: %w", id, err)
	}
	if used.Valid {
		e.LastUsedAt = time.UnixMicro(used.Int64)
	}
	return &e, nil
}
