package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TrackDomain is a host name (Name.Domain) that serves a server's open and
// click tracking; customers CNAME it to dns.track_domain.
type TrackDomain struct {
	ID       int64  `json:"id"`
	UUID     string `json:"uuid"`
	ServerID int64  `json:"server_id"`
	DomainID int64  `json:"domain_id"`
	Domain   string `json:"domain"`
	// Name is the label in front of Domain, e.g. "click".
	Name                 string   `json:"name"`
	SSLEnabled           bool     `json:"ssl_enabled"`
	TrackClicks          bool     `json:"track_clicks"`
	TrackLoads           bool     `json:"track_loads"`
	ExcludedClickDomains []string `json:"excluded_click_domains"`
	// Verified: the operator vouches for DNS managed elsewhere; tracking
	// is on whatever the CNAME check says.
	Verified     bool      `json:"verified"`
	DNS          DNSCheck  `json:"dns"`
	DNSCheckedAt time.Time `json:"dns_checked_at,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// FullName is the tracking host name, Name.Domain.
func (t *TrackDomain) FullName() string { return t.Name + "." + t.Domain }

// NewTrackDomain holds what a track domain is created with.
type NewTrackDomain struct {
	DomainID             int64
	Name                 string
	SSLEnabled           bool
	TrackClicks          bool
	TrackLoads           bool
	ExcludedClickDomains []string
}

// CreateTrackDomain adds a track domain under one of the server's domains.
// A domain of another server wraps ErrNotFound; the same name twice under
// one domain wraps ErrConflict.
func (s *Store) CreateTrackDomain(ctx context.Context, serverID int64, nt NewTrackDomain) (*TrackDomain, error) {
	name := strings.ToLower(strings.TrimSpace(nt.Name))
	if name == "" {
		return nil, errors.New("create track domain: name is empty")
	}
	now := s.now().UnixMicro()
	uuid := newUUID()
	err := s.inTx(ctx, func(t tx) error {
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM domains WHERE id = ? AND server_id = ?`, nt.DomainID, serverID).Scan(&n); err != nil {
			return fmt.Errorf("create track domain %s: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("domain %d: %w", nt.DomainID, ErrNotFound)
		}
		_, err := t.exec(ctx, `INSERT INTO track_domains (uuid, server_id, domain_id, name, ssl_enabled, track_clicks, track_loads,
			excluded_click_domains, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			uuid, serverID, nt.DomainID, name, nt.SSLEnabled, nt.TrackClicks, nt.TrackLoads,
			nullString(strings.Join(nt.ExcludedClickDomains, "\n")), now, now)
		if isUniqueViolation(err) {
			return fmt.Errorf("track domain %s: %w", name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create track domain %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	list, err := s.trackDomains(ctx, `t.uuid = ?`, uuid)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("track domain %s: %w", uuid, ErrNotFound)
	}
	return list[0], nil
}

// TrackDomains lists a server's track domains by full name.
func (s *Store) TrackDomains(ctx context.Context, serverID int64) ([]*TrackDomain, error) {
	return s.trackDomains(ctx, `t.server_id = ?`, serverID)
}

// TrackDomainsDueForDNSCheck lists, by id, up to limit track domains with
// an id above afterID never checked or last checked at or before
// checkedBefore.
func (s *Store) TrackDomainsDueForDNSCheck(ctx context.Context, checkedBefore time.Time, afterID int64, limit int) ([]*TrackDomain, error) {
	return s.trackDomains(ctx, `t.id > ? AND (t.dns_checked_at IS NULL OR t.dns_checked_at <= ?) ORDER BY t.id LIMIT ?`,
		afterID, checkedBefore.UnixMicro(), limit)
}

func (s *Store) trackDomains(ctx context.Context, where string, args ...any) ([]*TrackDomain, error) {
	q := `SELECT t.id, t.uuid, t.server_id, t.domain_id, d.name, t.name, t.ssl_enabled, t.track_clicks, t.track_loads,
		t.excluded_click_domains, t.verified, t.dns_status, t.dns_error, t.dns_checked_at, t.created_at, t.updated_at
		FROM track_domains t JOIN domains d ON d.id = t.domain_id WHERE ` + where
	if !strings.Contains(where, "ORDER BY") {
		q += ` ORDER BY d.name, t.name`
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list track domains: %w", err)
	}
	defer rows.Close()
	out := []*TrackDomain{}
	for rows.Next() {
		var (
			t                     TrackDomain
			excluded, st, stError sql.NullString
			checked               sql.NullInt64
			created, updated      int64
		)
		if err := rows.Scan(&t.ID, &t.UUID, &t.ServerID, &t.DomainID, &t.Domain, &t.Name, &t.SSLEnabled, &t.TrackClicks,
			&t.TrackLoads, &excluded, &t.Verified, &st, &stError, &checked, &created, &updated); err != nil {
			return nil, fmt.Errorf("list track domains: %w", err)
		}
		t.ExcludedClickDomains = splitLines(excluded.String)
		t.DNS = DNSCheck{Status: st.String, Error: stError.String}
		t.DNSCheckedAt = fromMicros(checked)
		t.CreatedAt, t.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
		out = append(out, &t)
	}
	return out, rows.Err()
}

// SaveTrackDomainDNSCheck stores the DNS check result of track domain id.
// An unknown id wraps ErrNotFound.
func (s *Store) SaveTrackDomainDNSCheck(ctx context.Context, id int64, c DNSCheck, checkedAt time.Time) error {
	res, err := s.exec(ctx, `UPDATE track_domains SET dns_status = ?, dns_error = ?, dns_checked_at = ?, updated_at = ? WHERE id = ?`,
		nullString(c.Status), nullString(c.Error), checkedAt.UnixMicro(), s.now().UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("save DNS check of track domain %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("track domain %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteTrackDomain removes the track domain with uuid from server
// serverID. A track domain of another server, or an unknown one, wraps
// ErrNotFound.
func (s *Store) DeleteTrackDomain(ctx context.Context, serverID int64, uuid string) error {
	res, err := s.exec(ctx, `DELETE FROM track_domains WHERE uuid = ? AND server_id = ?`, uuid, serverID)
	if err != nil {
		return fmt.Errorf("delete track domain %s: %w", uuid, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("track domain %s: %w", uuid, ErrNotFound)
	}
	return nil
}
