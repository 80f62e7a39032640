package store

import (
	"context"
	"fmt"
	"time"
)

// DNS check statuses, as Postal stores them.
const (
	DNSStatusOK      = "OK"
	DNSStatusMissing = "Missing"
	DNSStatusInvalid = "Invalid"
)

// DomainDNSCheck is the outcome of checking a domain's DNS records.
type DomainDNSCheck struct {
	SPF        DNSCheck
	DKIM       DNSCheck
	MX         DNSCheck
	ReturnPath DNSCheck
	// Verified marks the domain verified (when it is not already) because
	// its verification record was found. False never unverifies a domain.
	Verified  bool
	CheckedAt time.Time
}

// SaveDomainDNSCheck stores the check results of domain id (and its
// verification, see DomainDNSCheck.Verified) in one statement and returns
// the updated domain. An unknown id wraps ErrNotFound.
func (s *Store) SaveDomainDNSCheck(ctx context.Context, id int64, c DomainDNSCheck) (*Domain, error) {
	at := c.CheckedAt
	if at.IsZero() {
		at = s.now()
	}
	var verified any
	if c.Verified {
		verified = at.UnixMicro()
	}
	res, err := s.exec(ctx, `UPDATE domains SET spf_status = ?, spf_error = ?, dkim_status = ?, dkim_error = ?,
		mx_status = ?, mx_error = ?, return_path_status = ?, return_path_error = ?, dns_checked_at = ?,
		verified_at = COALESCE(verified_at, ?), updated_at = ? WHERE id = ?`,
		nullString(c.SPF.Status), nullString(c.SPF.Error), nullString(c.DKIM.Status), nullString(c.DKIM.Error),
		nullString(c.MX.Status), nullString(c.MX.Error), nullString(c.ReturnPath.Status), nullString(c.ReturnPath.Error),
		at.UnixMicro(), verified, s.now().UnixMicro(), id)
	if err != nil {
		return nil, fmt.Errorf("save DNS check of domain %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("domain %d: %w", id, ErrNotFound)
	}
	return s.DomainByID(ctx, id)
}

// DomainsDueForDNSCheck lists, by id, up to limit domains with an id above
// afterID that were never checked or last checked at or before
// checkedBefore: one page of the periodic re-check.
func (s *Store) DomainsDueForDNSCheck(ctx context.Context, checkedBefore time.Time, afterID int64, limit int) ([]*Domain, error) {
	return s.listDomains(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE id > ? AND (dns_checked_at IS NULL OR dns_checked_at <= ?) ORDER BY id LIMIT ?`,
		afterID, checkedBefore.UnixMicro(), limit)
}

// DeleteDomain removes domain id from server serverID and, by cascade, its
// routes and track domains. A domain of another server, or an unknown one,
// wraps ErrNotFound.
func (s *Store) DeleteDomain(ctx context.Context, serverID, id int64) error {
	res, err := s.exec(ctx, `DELETE FROM domains WHERE id = ? AND server_id = ?`, id, serverID)
	if err != nil {
		return fmt.Errorf("delete domain %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("domain %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteCredential removes the credential with uuid from server serverID.
// A credential of another server, or an unknown one, wraps ErrNotFound.
func (s *Store) DeleteCredential(ctx context.Context, serverID int64, uuid string) error {
	res, err := s.exec(ctx, `DELETE FROM credentials WHERE uuid = ? AND server_id = ?`, uuid, serverID)
	if err != nil {
		return fmt.Errorf("delete credential %s: %w", uuid, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("credential %s: %w", uuid, ErrNotFound)
	}
	return nil
}
