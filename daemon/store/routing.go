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
