package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Route modes, as Postal names them.
const (
	RouteModeEndpoint = "Endpoint"
	RouteModeAccept   = "Accept"
	RouteModeHold     = "Hold"
	RouteModeBounce   = "Bounce"
	RouteModeReject   = "Reject"
)

// Route spam modes.
const (
	SpamModeMark       = "Mark"
	SpamModeQuarantine = "Quarantine"
	SpamModeFail       = "Fail"
)

// Endpoint types, as stored in routes.endpoint_type.
const (
	EndpointHTTP    = "HTTPEndpoint"
	EndpointSMTP    = "SMTPEndpoint"
	EndpointAddress = "AddressEndpoint"
)

// Route sends mail for name@domain (name "*" for any local part) to an
// endpoint, or accepts, holds, bounces or rejects it.
type Route struct {
	ID       int64  `json:"id"`
	UUID     string `json:"uuid"`
	ServerID int64  `json:"server_id"`
	// DomainID and Domain are 0 and "" for a server's return-path route.
	DomainID int64  `json:"domain_id,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Name     string `json:"name"`
	// Token addresses the route at dns.route_domain (<token>@<route_domain>).
	Token    string `json:"token"`
	Mode     string `json:"mode"`
	SpamMode string `json:"spam_mode"`
	// EndpointType is EndpointHTTP, EndpointSMTP, EndpointAddress or "".
	EndpointType string `json:"endpoint_type,omitempty"`
	EndpointID   int64  `json:"endpoint_id,omitempty"`
	// Endpoint describes the target: the URL, host:port or address.
	Endpoint  string    `json:"endpoint,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Address is the route's name@domain.
func (r *Route) Address() string { return r.Name + "@" + r.Domain }

// NewEndpoint describes an endpoint created with a route: an HTTP URL, an
// SMTP host and port, or an e-mail address, per Type.
type NewEndpoint struct {
	// UUID, when set, names an existing endpoint of the route's server
	// (see CreateEndpoint) instead of creating one; the other fields are
	// then ignored.
	UUID string
	// Name defaults to the URL or host name (unused for addresses).
	Name     string
	Type     string
	URL      string
	Hostname string
	Port     int
	Address  string
	// HTTP options; zero values take Postal's defaults (BodyAsJSON, Hash,
	// no reply stripping, 5 s). IncludeAttachments is the inverse of
	// Postal's default-true include_attachments.
	Encoding           string
	Format             string
	StripReplies       bool
	ExcludeAttachments bool
	Timeout            int
	// SSLMode of an SMTP endpoint (default Auto).
	SSLMode string
}

// NewRoute holds what a route is created with. Mode is RouteModeEndpoint
// exactly when Endpoint is set; SpamMode defaults to SpamModeMark.
type NewRoute struct {
	DomainID int64
	Name     string
	Mode     string
	SpamMode string
	Endpoint *NewEndpoint
}

func validRouteMode(m string) bool {
	switch m {
	case RouteModeEndpoint, RouteModeAccept, RouteModeHold, RouteModeBounce, RouteModeReject:
		return true
	}
	return false
}

func validSpamMode(m string) bool {
	return m == SpamModeMark || m == SpamModeQuarantine || m == SpamModeFail
}

// CreateRoute creates a route on server serverID, and its endpoint when one
// is given, in one transaction: either both exist afterwards or neither.
// The domain must belong to the server (else ErrNotFound); a second route
// for the same name@domain wraps ErrConflict.
func (s *Store) CreateRoute(ctx context.Context, serverID int64, nr NewRoute) (*Route, error) {
	if nr.SpamMode == "" {
		nr.SpamMode = SpamModeMark
	}
	switch {
	case !validRouteMode(nr.Mode):
		return nil, fmt.Errorf("route mode %q is not Endpoint, Accept, Hold, Bounce or Reject", nr.Mode)
	case !validSpamMode(nr.SpamMode):
		return nil, fmt.Errorf("route spam mode %q is not Mark, Quarantine or Fail", nr.SpamMode)
	case (nr.Mode == RouteModeEndpoint) != (nr.Endpoint != nil):
		return nil, fmt.Errorf("route mode %s: an endpoint is required exactly when the mode is Endpoint", nr.Mode)
	case nr.Name == "":
		return nil, fmt.Errorf("route name is empty")
	}
	name := strings.ToLower(nr.Name)
	now := s.now().UnixMicro()
	var id int64
	err := s.inTx(ctx, func(t tx) error {
		var owner int64
		var domain string
		err := t.queryRow(ctx, `SELECT server_id, name FROM domains WHERE id = ?`, nr.DomainID).Scan(&owner, &domain)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != serverID) {
			return fmt.Errorf("domain %d: %w", nr.DomainID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("route domain: %w", err)
		}
		var epType any
		var epID any
		if ep := nr.Endpoint; ep != nil && ep.UUID != "" {
			kind, eid, err := findEndpoint(ctx, t, serverID, ep.UUID)
			if err != nil {
				return err
			}
			epType, epID = kind, eid
		} else if ep != nil {
			eid, err := insertEndpoint(ctx, t, serverID, *ep, now)
			if err != nil {
				return err
			}
			epType, epID = ep.Type, eid
		}
		err = t.queryRow(ctx, `INSERT INTO routes (uuid, server_id, domain_id, name, token, mode, spam_mode, endpoint_type,
			endpoint_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			newUUID(), serverID, nr.DomainID, name, RandomToken(4), nr.Mode, nr.SpamMode, epType, epID, now, now).Scan(&id)
		if isUniqueViolation(err) {
			return fmt.Errorf("route %s@%s: %w", name, domain, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create route %s@%s: %w", name, domain, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.route(ctx, `r.id = ?`, id)
}

func insertEndpoint(ctx context.Context, t tx, serverID int64, ep NewEndpoint, now int64) (int64, error) {
	var id int64
	var err error
	switch ep.Type {
	case EndpointHTTP:
		if ep.URL == "" {
			return 0, fmt.Errorf("HTTP endpoint: URL is empty")
		}
		if ep.Encoding == "" {
			ep.Encoding = EncodingBodyAsJSON
		}
		if ep.Format == "" {
			ep.Format = FormatHash
		}
		if ep.Timeout == 0 {
			ep.Timeout = 5
		}
		switch {
		case ep.Encoding != EncodingBodyAsJSON && ep.Encoding != EncodingFormData:
			return 0, fmt.Errorf("HTTP endpoint: encoding %q is not %s or %s", ep.Encoding, EncodingBodyAsJSON, EncodingFormData)
		case ep.Format != FormatHash && ep.Format != FormatRawMessage:
			return 0, fmt.Errorf("HTTP endpoint: format %q is not %s or %s", ep.Format, FormatHash, FormatRawMessage)
		case ep.Timeout < 5 || ep.Timeout > 60:
			return 0, fmt.Errorf("HTTP endpoint: timeout %d is not from 5 to 60 seconds", ep.Timeout)
		}
		err = t.queryRow(ctx, `INSERT INTO http_endpoints (uuid, server_id, name, url, encoding, format, strip_replies,
			include_attachments, timeout, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			newUUID(), serverID, nameOr(ep.Name, ep.URL), ep.URL, ep.Encoding, ep.Format, ep.StripReplies, !ep.ExcludeAttachments,
			ep.Timeout, now, now).Scan(&id)
	case EndpointSMTP:
		if ep.Hostname == "" || ep.Port <= 0 || ep.Port > 65535 {
			return 0, fmt.Errorf("SMTP endpoint: want a host name and a port from 1 to 65535")
		}
		if ep.SSLMode == "" {
			ep.SSLMode = SSLModeAuto
		}
		switch ep.SSLMode {
		case SSLModeNone, SSLModeAuto, SSLModeSTARTTLS, SSLModeTLS:
		default:
			return 0, fmt.Errorf("SMTP endpoint: ssl mode %q is not None, Auto, STARTTLS or TLS", ep.SSLMode)
		}
		err = t.queryRow(ctx, `INSERT INTO smtp_endpoints (uuid, server_id, name, hostname, port, ssl_mode, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, newUUID(), serverID, nameOr(ep.Name, ep.Hostname), ep.Hostname, ep.Port, ep.SSLMode,
			now, now).Scan(&id)
	case EndpointAddress:
		if ep.Address == "" {
			return 0, fmt.Errorf("address endpoint: address is empty")
		}
		err = t.queryRow(ctx, `INSERT INTO address_endpoints (uuid, server_id, address, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, newUUID(), serverID, ep.Address, now, now).Scan(&id)
	default:
		return 0, fmt.Errorf("endpoint type %q is not %s, %s or %s", ep.Type, EndpointHTTP, EndpointSMTP, EndpointAddress)
	}
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", ep.Type, err)
	}
	return id, nil
}

const routeSelect = `SELECT r.id, r.uuid, r.server_id, r.domain_id, d.name, r.name, r.token, r.mode, r.spam_mode,
	r.endpoint_type, r.endpoint_id, h.url, se.hostname, se.port, ae.address, r.created_at, r.updated_at
	FROM routes r LEFT JOIN domains d ON d.id = r.domain_id
	LEFT JOIN http_endpoints h ON r.endpoint_type = 'HTTPEndpoint' AND h.id = r.endpoint_id
	LEFT JOIN smtp_endpoints se ON r.endpoint_type = 'SMTPEndpoint' AND se.id = r.endpoint_id
	LEFT JOIN address_endpoints ae ON r.endpoint_type = 'AddressEndpoint' AND ae.id = r.endpoint_id `

func scanRoute(sc interface{ Scan(...any) error }) (*Route, error) {
	var (
		r                       Route
		domainName, epType, url sql.NullString
		host, addr              sql.NullString
		domainID, epID, port    sql.NullInt64
		created, updated        int64
	)
	if err := sc.Scan(&r.ID, &r.UUID, &r.ServerID, &domainID, &domainName, &r.Name, &r.Token, &r.Mode, &r.SpamMode,
		&epType, &epID, &url, &host, &port, &addr, &created, &updated); err != nil {
		return nil, err
	}
	r.DomainID, r.Domain = domainID.Int64, domainName.String
	r.EndpointType, r.EndpointID = epType.String, epID.Int64
	switch r.EndpointType {
	case EndpointHTTP:
		r.Endpoint = url.String
	case EndpointSMTP:
		r.Endpoint = net.JoinHostPort(host.String, strconv.FormatInt(port.Int64, 10))
	case EndpointAddress:
		r.Endpoint = addr.String
	}
	r.CreatedAt, r.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
	return &r, nil
}

func (s *Store) route(ctx context.Context, where string, args ...any) (*Route, error) {
	r, err := scanRoute(s.queryRow(ctx, routeSelect+`WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("route: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("route: %w", err)
	}
	return r, nil
}

// Routes lists a server's routes by domain and name.
func (s *Store) Routes(ctx context.Context, serverID int64) ([]*Route, error) {
	rows, err := s.query(ctx, routeSelect+`WHERE r.server_id = ? ORDER BY d.name, r.name`, serverID)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	defer rows.Close()
	out := []*Route{}
	for rows.Next() {
		r, err := scanRoute(rows)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteRoute removes the route with uuid from server serverID (and its
// additional endpoints' rows), together with its endpoint when no other
// route uses that endpoint, as primary or additional, in one
// transaction. A route of another server, or an unknown one, wraps
// ErrNotFound.
func (s *Store) DeleteRoute(ctx context.Context, serverID int64, uuid string) error {
	return s.inTx(ctx, func(t tx) error {
		var id int64
		var epType sql.NullString
		var epID sql.NullInt64
		err := t.queryRow(ctx, `SELECT id, endpoint_type, endpoint_id FROM routes WHERE uuid = ? AND server_id = ?`,
			uuid, serverID).Scan(&id, &epType, &epID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("route %s: %w", uuid, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete route %s: %w", uuid, err)
		}
		if _, err := t.exec(ctx, `DELETE FROM routes WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete route %s: %w", uuid, err)
		}
		table := map[string]string{EndpointHTTP: "http_endpoints", EndpointSMTP: "smtp_endpoints",
			EndpointAddress: "address_endpoints"}[epType.String]
		if table == "" {
			return nil
		}
		_, err = t.exec(ctx, `DELETE FROM `+table+` WHERE id = ? AND NOT EXISTS
			(SELECT 1 FROM routes WHERE endpoint_type = ? AND endpoint_id = ?) AND NOT EXISTS
			(SELECT 1 FROM route_additional_endpoints WHERE endpoint_type = ? AND endpoint_id = ?)`,
			epID.Int64, epType.String, epID.Int64, epType.String, epID.Int64)
		if err != nil {
			return fmt.Errorf("delete endpoint of route %s: %w", uuid, err)
		}
		return nil
	})
}
