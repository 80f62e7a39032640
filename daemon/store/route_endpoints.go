package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AdditionalEndpoint is one of a route's additional endpoints: each
// incoming message for the route is also delivered, as a message of its
// own, to each of them (Postal's additional_route_endpoints).
type AdditionalEndpoint struct {
	ID      int64  `json:"id"`
	RouteID int64  `json:"route_id"`
	Type    string `json:"type"`
	// EndpointID is the id in Type's table; UUID is the endpoint's.
	EndpointID int64  `json:"endpoint_id"`
	UUID       string `json:"uuid"`
	// Target is the URL, host:port or address.
	Target    string    `json:"target"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrNotEndpointRoute refuses additional endpoints on a route that is
// not in mode Endpoint.
var ErrNotEndpointRoute = errors.New("only a route in mode Endpoint has additional endpoints")

// AddAdditionalEndpoint adds server serverID's endpoint endpointUUID to
// route routeID (of the same server) as an additional endpoint. As in
// Postal the route must be in mode Endpoint (ErrNotEndpointRoute), the
// endpoint must not be the route's primary one, and a "*" route takes HTTP
// endpoints only; adding one twice wraps ErrConflict; an unknown route or
// endpoint wraps ErrNotFound.
func (s *Store) AddAdditionalEndpoint(ctx context.Context, serverID, routeID int64, endpointUUID string) (*AdditionalEndpoint, error) {
	var id int64
	err := s.inTx(ctx, func(t tx) error {
		var (
			name, mode string
			primType   sql.NullString
			primID     sql.NullInt64
		)
		err := t.queryRow(ctx, `SELECT name, mode, endpoint_type, endpoint_id FROM routes WHERE id = ? AND server_id = ?`,
			routeID, serverID).Scan(&name, &mode, &primType, &primID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("route %d: %w", routeID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("route %d: %w", routeID, err)
		}
		if mode != RouteModeEndpoint {
			return ErrNotEndpointRoute
		}
		kind, epID, err := findEndpoint(ctx, t, serverID, endpointUUID)
		if err != nil {
			return err
		}
		if kind == primType.String && epID == primID.Int64 {
			return fmt.Errorf("endpoint %s is the route's primary endpoint", endpointUUID)
		}
		if name == "*" && kind != EndpointHTTP {
			return fmt.Errorf("a * route takes only HTTP endpoints as additional endpoints")
		}
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM route_additional_endpoints WHERE route_id = ? AND endpoint_type = ?
			AND endpoint_id = ?`, routeID, kind, epID).Scan(&n); err != nil {
			return fmt.Errorf("add endpoint %s: %w", endpointUUID, err)
		}
		if n > 0 {
			return fmt.Errorf("endpoint %s: %w", endpointUUID, ErrConflict)
		}
		return t.queryRow(ctx, `INSERT INTO route_additional_endpoints (route_id, endpoint_type, endpoint_id, created_at)
			VALUES (?, ?, ?, ?) RETURNING id`, routeID, kind, epID, s.now().UnixMicro()).Scan(&id)
	})
	if err != nil {
		return nil, err
	}
	list, err := s.AdditionalEndpoints(ctx, routeID)
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		if a.ID == id {
			return a, nil
		}
	}
	return nil, fmt.Errorf("additional endpoint %d: %w", id, ErrNotFound)
}

// RemoveAdditionalEndpoint removes endpoint endpointUUID (of server
// serverID) from route routeID's additional endpoints; the endpoint itself
// stays. One that is not there wraps ErrNotFound.
func (s *Store) RemoveAdditionalEndpoint(ctx context.Context, serverID, routeID int64, endpointUUID string) error {
	return s.inTx(ctx, func(t tx) error {
		kind, epID, err := findEndpoint(ctx, t, serverID, endpointUUID)
		if err != nil {
			return err
		}
		res, err := t.exec(ctx, `DELETE FROM route_additional_endpoints WHERE route_id = ? AND endpoint_type = ? AND endpoint_id = ?
			AND route_id IN (SELECT id FROM routes WHERE server_id = ?)`, routeID, kind, epID, serverID)
		if err != nil {
			return fmt.Errorf("remove endpoint %s: %w", endpointUUID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("additional endpoint %s of route %d: %w", endpointUUID, routeID, ErrNotFound)
		}
		return nil
	})
}

// AdditionalEndpoints lists route routeID's additional endpoints in the
// order they were added.
func (s *Store) AdditionalEndpoints(ctx context.Context, routeID int64) ([]*AdditionalEndpoint, error) {
	rows, err := s.query(ctx, `SELECT a.id, a.route_id, a.endpoint_type, a.endpoint_id, a.created_at,
		COALESCE(h.uuid, sm.uuid, ad.uuid, ''), COALESCE(h.url, sm.hostname || ':' || sm.port, ad.address, '')
		FROM route_additional_endpoints a
		LEFT JOIN http_endpoints h ON a.endpoint_type = ? AND h.id = a.endpoint_id
		LEFT JOIN smtp_endpoints sm ON a.endpoint_type = ? AND sm.id = a.endpoint_id
		LEFT JOIN address_endpoints ad ON a.endpoint_type = ? AND ad.id = a.endpoint_id
		WHERE a.route_id = ? ORDER BY a.id`, EndpointHTTP, EndpointSMTP, EndpointAddress, routeID)
	if err != nil {
		return nil, fmt.Errorf("additional endpoints of route %d: %w", routeID, err)
	}
	defer rows.Close()
	out := []*AdditionalEndpoint{}
	for rows.Next() {
		a := &AdditionalEndpoint{}
		var created int64
		if err := rows.Scan(&a.ID, &a.RouteID, &a.Type, &a.EndpointID, &created, &a.UUID, &a.Target); err != nil {
			return nil, fmt.Errorf("additional endpoints of route %d: %w", routeID, err)
		}
		a.CreatedAt = time.UnixMicro(created)
		out = append(out, a)
	}
	return out, rows.Err()
}
