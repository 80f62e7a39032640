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

func nameOr(name, def string) string {
	if name != "" {
		return name
	}
	return def
}

// endpointTables maps an endpoint type to its table.
var endpointTables = map[string]string{EndpointHTTP: "http_endpoints", EndpointSMTP: "smtp_endpoints",
	EndpointAddress: "address_endpoints"}

// findEndpoint returns the type and id of server serverID's endpoint uuid;
// none wraps ErrNotFound.
func findEndpoint(ctx context.Context, t tx, serverID int64, uuid string) (string, int64, error) {
	for _, kind := range []string{EndpointHTTP, EndpointSMTP, EndpointAddress} {
		var id int64
		err := t.queryRow(ctx, `SELECT id FROM `+endpointTables[kind]+` WHERE uuid = ? AND server_id = ?`, uuid, serverID).Scan(&id)
		if err == nil {
			return kind, id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", 0, fmt.Errorf("endpoint %s: %w", uuid, err)
		}
	}
	return "", 0, fmt.Errorf("endpoint %s: %w", uuid, ErrNotFound)
}

// Endpoint is one endpoint of any type, as listed.
type Endpoint struct {
	Type string `json:"type"`
	ID   int64  `json:"id"`
	UUID string `json:"uuid"`
	Name string `json:"name"`
	// Target is the URL, host:port or address.
	Target string `json:"target"`
	// Options summarises the type's settings (format, encoding, ssl mode...).
	Options string `json:"options,omitempty"`
	// Routes counts the routes that use it.
	Routes int `json:"routes"`
}

// CreateEndpoint creates an endpoint on server serverID that routes can
// then refer to by its UUID. Invalid settings are refused with a message
// naming the field.
func (s *Store) CreateEndpoint(ctx context.Context, serverID int64, ep NewEndpoint) (*Endpoint, error) {
	var id int64
	err := s.inTx(ctx, func(t tx) error {
		var err error
		id, err = insertEndpoint(ctx, t, serverID, ep, s.now().UnixMicro())
		return err
	})
	if err != nil {
		return nil, err
	}
	list, err := s.Endpoints(ctx, serverID)
	if err != nil {
		return nil, err
	}
	for _, e := range list {
		if e.Type == ep.Type && e.ID == id {
			return e, nil
		}
	}
	return nil, fmt.Errorf("endpoint %d: %w", id, ErrNotFound)
}

// Endpoints lists a server's endpoints: HTTP, then SMTP, then address, each
// by id.
func (s *Store) Endpoints(ctx context.Context, serverID int64) ([]*Endpoint, error) {
	const uses = `(SELECT COUNT(*) FROM routes r WHERE r.endpoint_type = ? AND r.endpoint_id = e.id)`
	// Routes counts primary uses; additional ones are listed by
	// `postalctl route endpoint ls`.
	queries := []struct {
		kind, q string
	}{
		{EndpointHTTP, `SELECT e.id, e.uuid, e.name, e.url, e.format || ' ' || e.encoding || ' timeout=' || e.timeout ||
			CASE WHEN e.strip_replies THEN ' strip_replies' ELSE '' END ||
			CASE WHEN e.include_attachments THEN '' ELSE ' no_attachments' END, ` + uses + `
			FROM http_endpoints e WHERE e.server_id = ? ORDER BY e.id`},
		{EndpointSMTP, `SELECT e.id, e.uuid, e.name, e.hostname || ':' || e.port, 'ssl_mode=' || e.ssl_mode, ` + uses + `
			FROM smtp_endpoints e WHERE e.server_id = ? ORDER BY e.id`},
		{EndpointAddress, `SELECT e.id, e.uuid, e.address, e.address, '', ` + uses + `
			FROM address_endpoints e WHERE e.server_id = ? ORDER BY e.id`},
	}
	out := []*Endpoint{}
	for _, q := range queries {
		rows, err := s.query(ctx, q.q, q.kind, serverID)
		if err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
		for rows.Next() {
			e := &Endpoint{Type: q.kind}
			if err := rows.Scan(&e.ID, &e.UUID, &e.Name, &e.Target, &e.Options, &e.Routes); err != nil {
				rows.Close()
				return nil, fmt.Errorf("list endpoints: %w", err)
			}
			out = append(out, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
	}
	return out, nil
}

// DeleteEndpoint removes server serverID's endpoint uuid; as in Postal,
// every route that used it is switched to mode Reject without an endpoint
// and it leaves the routes that had it as an additional endpoint, in the
// same transaction. It returns how many routes were switched. An
// unknown endpoint wraps ErrNotFound.
func (s *Store) DeleteEndpoint(ctx context.Context, serverID int64, uuid string) (int, error) {
	var switched int
	err := s.inTx(ctx, func(t tx) error {
		kind, id, err := findEndpoint(ctx, t, serverID, uuid)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM route_additional_endpoints WHERE endpoint_type = ? AND endpoint_id = ?`,
			kind, id); err != nil {
			return fmt.Errorf("delete endpoint %s: %w", uuid, err)
		}
		res, err := t.exec(ctx, `UPDATE routes SET mode = ?, endpoint_type = NULL, endpoint_id = NULL, updated_at = ?
			WHERE endpoint_type = ? AND endpoint_id = ?`, RouteModeReject, s.now().UnixMicro(), kind, id)
		if err != nil {
			return fmt.Errorf("delete endpoint %s: %w", uuid, err)
		}
		n, _ := res.RowsAffected()
		switched = int(n)
		if _, err := t.exec(ctx, `DELETE FROM `+endpointTables[kind]+` WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete endpoint %s: %w", uuid, err)
		}
		return nil
	})
	return switched, err
}
