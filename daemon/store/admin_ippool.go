package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IPPool is a named set of sending IP addresses.
type IPPool struct {
	ID        int64     `json:"id"`
	UUID      string    `json:"uuid"`
	Name      string    `json:"name"`
	Default   bool      `json:"default"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// CreateIPPool adds a pool. When isDefault is true it becomes the only
// default pool (in the same transaction). A duplicate name wraps
// ErrConflict.
func (s *Store) CreateIPPool(ctx context.Context, name string, isDefault bool) (*IPPool, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("create IP pool: name is empty")
	}
	now := s.now().UnixMicro()
	err := s.inTx(ctx, func(t tx) error {
		if isDefault {
			if _, err := t.exec(ctx, `UPDATE ip_pools SET is_default = ?, updated_at = ? WHERE is_default = ?`, false, now, true); err != nil {
				return fmt.Errorf("create IP pool %s: %w", name, err)
			}
		}
		_, err := t.exec(ctx, `INSERT INTO ip_pools (uuid, name, is_default, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			newUUID(), name, isDefault, now, now)
		if isUniqueViolation(err) {
			return fmt.Errorf("IP pool %s: %w", name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create IP pool %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.IPPool(ctx, name)
}

const ipPoolColumns = `id, uuid, name, is_default, created_at, updated_at`

func scanIPPool(sc interface{ Scan(...any) error }) (*IPPool, error) {
	var p IPPool
	var created, updated int64
	if err := sc.Scan(&p.ID, &p.UUID, &p.Name, &p.Default, &created, &updated); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
	return &p, nil
}

// IPPool looks a pool up by name; an unknown name wraps ErrNotFound.
func (s *Store) IPPool(ctx context.Context, name string) (*IPPool, error) {
	p, err := scanIPPool(s.queryRow(ctx, `SELECT `+ipPoolColumns+` FROM ip_pools WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("IP pool %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("IP pool %s: %w", name, err)
	}
	return p, nil
}

// IPPools lists every pool by name.
func (s *Store) IPPools(ctx context.Context) ([]*IPPool, error) {
	rows, err := s.query(ctx, `SELECT `+ipPoolColumns+` FROM ip_pools ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list IP pools: %w", err)
	}
	defer rows.Close()
	out := []*IPPool{}
	for rows.Next() {
		p, err := scanIPPool(rows)
		if err != nil {
			return nil, fmt.Errorf("list IP pools: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeleteIPPool removes a pool with its addresses and rules (by cascade)
// and detaches the servers that used it, in one transaction. An unknown
// name wraps ErrNotFound.
func (s *Store) DeleteIPPool(ctx context.Context, name string) error {
	return s.inTx(ctx, func(t tx) error {
		var id int64
		err := t.queryRow(ctx, `SELECT id FROM ip_pools WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("IP pool %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete IP pool %s: %w", name, err)
		}
		if _, err := t.exec(ctx, `UPDATE servers SET ip_pool_id = NULL WHERE ip_pool_id = ?`, id); err != nil {
			return fmt.Errorf("delete IP pool %s: detach servers: %w", name, err)
		}
		if _, err := t.exec(ctx, `DELETE FROM ip_pools WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete IP pool %s: %w", name, err)
		}
		return nil
	})
}

// IPAddress is one sending address of a pool.
type IPAddress struct {
	ID        int64     `json:"id"`
	PoolID    int64     `json:"ip_pool_id"`
	Pool      string    `json:"ip_pool"`
	IPv4      string    `json:"ipv4"`
	IPv6      string    `json:"ipv6,omitempty"`
	Hostname  string    `json:"hostname"`
	Priority  int       `json:"priority"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewIPAddress holds what an address is created with; Priority 0 takes
// Postal's default of 100.
type NewIPAddress struct {
	PoolID   int64
	IPv4     string
	IPv6     string
	Hostname string
	Priority int
}

// CreateIPAddress adds an address to a pool. A second address with the
// same IPv4 wraps ErrConflict; an unknown pool wraps ErrNotFound.
func (s *Store) CreateIPAddress(ctx context.Context, na NewIPAddress) (*IPAddress, error) {
	if na.Priority == 0 {
		na.Priority = 100
	}
	if na.Priority < 0 || na.Priority > 100 {
		return nil, fmt.Errorf("create IP address %s: priority %d is not from 1 to 100", na.IPv4, na.Priority)
	}
	now := s.now().UnixMicro()
	var id int64
	err := s.inTx(ctx, func(t tx) error {
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM ip_pools WHERE id = ?`, na.PoolID).Scan(&n); err != nil {
			return fmt.Errorf("create IP address %s: %w", na.IPv4, err)
		}
		if n == 0 {
			return fmt.Errorf("IP pool %d: %w", na.PoolID, ErrNotFound)
		}
		err := t.queryRow(ctx, `INSERT INTO ip_addresses (ip_pool_id, ipv4, ipv6, hostname, priority, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, na.PoolID, na.IPv4, nullString(na.IPv6), na.Hostname, na.Priority,
			now, now).Scan(&id)
		if isUniqueViolation(err) {
			return fmt.Errorf("IP address %s: %w", na.IPv4, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create IP address %s: %w", na.IPv4, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	list, err := s.ipAddresses(ctx, `a.id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("IP address %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// IPAddresses lists the addresses of pool poolID (every pool's when 0),
// by pool name, priority (highest first) and address.
func (s *Store) IPAddresses(ctx context.Context, poolID int64) ([]*IPAddress, error) {
	if poolID == 0 {
		return s.ipAddresses(ctx, `1 = 1`)
	}
	return s.ipAddresses(ctx, `a.ip_pool_id = ?`, poolID)
}

func (s *Store) ipAddresses(ctx context.Context, where string, args ...any) ([]*IPAddress, error) {
	rows, err := s.query(ctx, `SELECT a.id, a.ip_pool_id, p.name, a.ipv4, a.ipv6, a.hostname, a.priority, a.created_at,
		a.updated_at FROM ip_addresses a JOIN ip_pools p ON p.id = a.ip_pool_id WHERE `+where+`
		ORDER BY p.name, a.priority DESC, a.ipv4`, args...)
	if err != nil {
		return nil, fmt.Errorf("list IP addresses: %w", err)
	}
	defer rows.Close()
	out := []*IPAddress{}
	for rows.Next() {
		var a IPAddress
		var v6 sql.NullString
		var created, updated int64
		if err := rows.Scan(&a.ID, &a.PoolID, &a.Pool, &a.IPv4, &v6, &a.Hostname, &a.Priority, &created, &updated); err != nil {
			return nil, fmt.Errorf("list IP addresses: %w", err)
		}
		a.IPv6 = v6.String
		a.CreatedAt, a.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
		out = append(out, &a)
	}
	return out, rows.Err()
}

// DeleteIPAddress removes the address whose IPv4 is ipv4; an unknown one
// wraps ErrNotFound.
func (s *Store) DeleteIPAddress(ctx context.Context, ipv4 string) error {
	res, err := s.exec(ctx, `DELETE FROM ip_addresses WHERE ipv4 = ?`, ipv4)
	if err != nil {
		return fmt.Errorf("delete IP address %s: %w", ipv4, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("IP address %s: %w", ipv4, ErrNotFound)
	}
	return nil
}

// IPPoolRule sends mail whose sender or recipient matches From or To
// through a pool. It belongs to a server, or (ServerID 0) to an
// organisation.
type IPPoolRule struct {
	ID             int64  `json:"id"`
	UUID           string `json:"uuid"`
	OrganizationID int64  `json:"organization_id,omitempty"`
	ServerID       int64  `json:"server_id,omitempty"`
	// Owner is "ORG" or "ORG/SERVER".
	Owner     string    `json:"owner"`
	PoolID    int64     `json:"ip_pool_id"`
	Pool      string    `json:"ip_pool"`
	From      []string  `json:"from"`
	To        []string  `json:"to"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewIPPoolRule holds what a rule is created with: exactly one of
// OrganizationID and ServerID, a pool, and at least one From or To entry
// (addresses or domains).
type NewIPPoolRule struct {
	OrganizationID int64
	ServerID       int64
	PoolID         int64
	From           []string
	To             []string
}

// CreateIPPoolRule adds a rule. It refuses a rule with no owner or two, or
// with nothing to match.
func (s *Store) CreateIPPoolRule(ctx context.Context, nr NewIPPoolRule) (*IPPoolRule, error) {
	if (nr.OrganizationID == 0) == (nr.ServerID == 0) {
		return nil, errors.New("create IP pool rule: give an organisation or a server")
	}
	if len(nr.From) == 0 && len(nr.To) == 0 {
		return nil, errors.New("create IP pool rule: give at least one from or to entry")
	}
	now := s.now().UnixMicro()
	uuid := newUUID()
	_, err := s.exec(ctx, `INSERT INTO ip_pool_rules (uuid, organization_id, server_id, ip_pool_id, from_text, to_text,
		created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, uuid, nullID(nr.OrganizationID), nullID(nr.ServerID),
		nr.PoolID, nullString(strings.Join(nr.From, "\n")), nullString(strings.Join(nr.To, "\n")), now, now)
	if err != nil {
		return nil, fmt.Errorf("create IP pool rule: %w", err)
	}
	list, err := s.ipPoolRules(ctx, `r.uuid = ?`, uuid)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("IP pool rule %s: %w", uuid, ErrNotFound)
	}
	return list[0], nil
}

// IPPoolRules lists the rules of an organisation (serverID 0) or of a
// server (organizationID ignored), by id.
func (s *Store) IPPoolRules(ctx context.Context, organizationID, serverID int64) ([]*IPPoolRule, error) {
	if serverID != 0 {
		return s.ipPoolRules(ctx, `r.server_id = ?`, serverID)
	}
	return s.ipPoolRules(ctx, `r.organization_id = ? AND r.server_id IS NULL`, organizationID)
}

func (s *Store) ipPoolRules(ctx context.Context, where string, args ...any) ([]*IPPoolRule, error) {
	rows, err := s.query(ctx, `SELECT r.id, r.uuid, r.organization_id, r.server_id, COALESCE(o.permalink, so.permalink),
		sv.permalink, r.ip_pool_id, p.name, r.from_text, r.to_text, r.created_at, r.updated_at
		FROM ip_pool_rules r JOIN ip_pools p ON p.id = r.ip_pool_id
		LEFT JOIN organizations o ON o.id = r.organization_id
		LEFT JOIN servers sv ON sv.id = r.server_id
		LEFT JOIN organizations so ON so.id = sv.organization_id
		WHERE `+where+` ORDER BY r.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list IP pool rules: %w", err)
	}
	defer rows.Close()
	out := []*IPPoolRule{}
	for rows.Next() {
		var (
			r                  IPPoolRule
			orgID, srvID       sql.NullInt64
			org, srv, from, to sql.NullString
			created, updated   int64
		)
		if err := rows.Scan(&r.ID, &r.UUID, &orgID, &srvID, &org, &srv, &r.PoolID, &r.Pool, &from, &to,
			&created, &updated); err != nil {
			return nil, fmt.Errorf("list IP pool rules: %w", err)
		}
		r.OrganizationID, r.ServerID = orgID.Int64, srvID.Int64
		r.Owner = org.String
		if srv.Valid {
			r.Owner += "/" + srv.String
		}
		r.From, r.To = splitLines(from.String), splitLines(to.String)
		r.CreatedAt, r.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
		out = append(out, &r)
	}
	return out, rows.Err()
}

func splitLines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// DeleteIPPoolRule removes the rule with uuid; an unknown one wraps
// ErrNotFound.
func (s *Store) DeleteIPPoolRule(ctx context.Context, uuid string) error {
	res, err := s.exec(ctx, `DELETE FROM ip_pool_rules WHERE uuid = ?`, uuid)
	if err != nil {
		return fmt.Errorf("delete IP pool rule %s: %w", uuid, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("IP pool rule %s: %w", uuid, ErrNotFound)
	}
	return nil
}
