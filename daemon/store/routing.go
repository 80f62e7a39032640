package store

// This file holds the lookups the smtp-server makes per recipient. The
// Route type, its modes and its CRUD live in admin_route.go.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// ReturnPathRouteName is the name of a server's return-path route: the
// route (without a domain) that bounces arriving at the server's return-path
// address are stored under, as in Postal.
const ReturnPathRouteName = "__returnpath__"

// RouteByToken finds the route whose token is token (the local part of its
// address at dns.route_domain). An unknown token wraps ErrNotFound.
func (s *Store) RouteByToken(ctx context.Context, token string) (*Route, error) {
	return s.route(ctx, `r.token = ?`, strings.ToLower(token))
}

// RouteForAddress finds the route that receives mail for localPart@domain,
// as Postal does: the route named localPart on a domain of that name, else
// the wildcard route "*" there. Only routes on verified domains match, so an
// unverified copy of someone else's domain on another server captures
// nothing. Names compare case-insensitively. No route wraps ErrNotFound.
func (s *Store) RouteForAddress(ctx context.Context, localPart, domain string) (*Route, error) {
	localPart = strings.ToLower(localPart)
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	rows, err := s.query(ctx, routeSelect+`WHERE d.name = ? AND d.verified_at IS NOT NULL AND r.name IN (?, '*') ORDER BY r.id`,
		domain, localPart)
	if err != nil {
		return nil, fmt.Errorf("route for %s@%s: %w", localPart, domain, err)
	}
	defer rows.Close()
	var wildcard *Route
	for rows.Next() {
		r, err := scanRoute(rows)
		if err != nil {
			return nil, fmt.Errorf("route for %s@%s: %w", localPart, domain, err)
		}
		if r.Name == localPart {
			return r, nil
		}
		if wildcard == nil {
			wildcard = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("route for %s@%s: %w", localPart, domain, err)
	}
	if wildcard == nil {
		return nil, fmt.Errorf("route for %s@%s: %w", localPart, domain, ErrNotFound)
	}
	return wildcard, nil
}

// ReturnPathRoute returns the server's return-path route. None wraps
// ErrNotFound.
func (s *Store) ReturnPathRoute(ctx context.Context, serverID int64) (*Route, error) {
	return s.route(ctx, `r.server_id = ? AND r.domain_id IS NULL AND r.name = ?`, serverID, ReturnPathRouteName)
}

// ServerByToken looks a server up by its token (the local part of its
// return-path address). An unknown token wraps ErrNotFound.
func (s *Store) ServerByToken(ctx context.Context, token string) (*Server, error) {
	v, err := scanServer(s.queryRow(ctx, `SELECT `+serverColumns+serverFrom+`WHERE s.token = ?`, strings.ToLower(token)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("server with token %q: %w", token, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("server with token %q: %w", token, err)
	}
	return v, nil
}

// CreateReturnPathRoute gives server serverID its return-path route: the
// route (no domain, named ReturnPathRouteName) that bounces arriving at the
// server's return-path address are stored under, delivered to the HTTP
// endpoint url when they match no sent message (auto-replies and the like),
// as in Postal. A second one for the server wraps ErrConflict.
func (s *Store) CreateReturnPathRoute(ctx context.Context, serverID int64, url string) (*Route, error) {
	now := s.now().UnixMicro()
	var id int64
	err := s.inTx(ctx, func(t tx) error {
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM routes WHERE server_id = ? AND domain_id IS NULL AND name = ?`,
			serverID, ReturnPathRouteName).Scan(&n); err != nil {
			return fmt.Errorf("return-path route: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("return-path route of server %d: %w", serverID, ErrConflict)
		}
		eid, err := insertEndpoint(ctx, t, serverID, NewEndpoint{Type: EndpointHTTP, URL: url}, now)
		if err != nil {
			return err
		}
		return t.queryRow(ctx, `INSERT INTO routes (uuid, server_id, domain_id, name, token, mode, spam_mode, endpoint_type,
			endpoint_id, created_at, updated_at) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			newUUID(), serverID, ReturnPathRouteName, RandomToken(4), RouteModeEndpoint, SpamModeMark, EndpointHTTP, eid,
			now, now).Scan(&id)
	})
	if err != nil {
		return nil, err
	}
	return s.route(ctx, `r.id = ?`, id)
}
