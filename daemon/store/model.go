package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Server modes.
const (
	ModeLive        = "Live"
	ModeDevelopment = "Development"
)

// Credential types, as Postal names them.
const (
	CredentialSMTP   = "SMTP"
	CredentialAPI    = "API"
	CredentialSMTPIP = "SMTP-IP"
)

// Organization owns servers.
type Organization struct {
	ID               int64     `json:"id"`
	UUID             string    `json:"uuid"`
	Name             string    `json:"name"`
	Permalink        string    `json:"permalink"`
	TimeZone         string    `json:"time_zone"`
	SuspendedAt      time.Time `json:"suspended_at,omitzero"`
	SuspensionReason string    `json:"suspension_reason,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// Server is a mail server: the unit that owns domains, credentials, routes
// and messages.
type Server struct {
	ID                      int64   `json:"id"`
	UUID                    string  `json:"uuid"`
	OrganizationID          int64   `json:"organization_id"`
	OrganizationPermalink   string  `json:"organization"`
	Name                    string  `json:"name"`
	Permalink               string  `json:"permalink"`
	Mode                    string  `json:"mode"`
	Token                   string  `json:"token"`
	SendLimit               *int64  `json:"send_limit"`
	MessageRetentionDays    int     `json:"message_retention_days"`
	RawMessageRetentionDays int     `json:"raw_message_retention_days"`
	RawMessageRetentionSize int     `json:"raw_message_retention_size"`
	SpamThreshold           float64 `json:"spam_threshold"`
	SpamFailureThreshold    float64 `json:"spam_failure_threshold"`
	// OutboundSpamThreshold, when set, has outgoing mail inspected; mail
	// scoring at least this much is held.
	OutboundSpamThreshold *float64  `json:"outbound_spam_threshold,omitempty"`
	PrivacyMode           bool      `json:"privacy_mode"`
	AllowSender           bool      `json:"allow_sender"`
	LogSMTPData           bool      `json:"log_smtp_data"`
	RequireTLS            bool      `json:"require_tls"`
	SuspendedAt           time.Time `json:"suspended_at,omitzero"`
	SuspensionReason      string    `json:"suspension_reason,omitempty"`
	CreatedAt             time.Time `json:"created_at"`
	UpdatedAt             time.Time `json:"updated_at"`
}

// Suspended reports whether the server is suspended.
func (s *Server) Suspended() bool { return !s.SuspendedAt.IsZero() }

// Path is the server's ORG/SERVER name as postalctl shows it.
func (s *Server) Path() string { return s.OrganizationPermalink + "/" + s.Permalink }

// DNSCheck is the result of one DNS check of a domain.
type DNSCheck struct {
	Status string `json:"status"` // "OK", "Missing", "Invalid" or "" (never checked)
	Error  string `json:"error,omitempty"`
}

// Domain is a sending/receiving domain of a server.
type Domain struct {
	ID                   int64     `json:"id"`
	UUID                 string    `json:"uuid"`
	ServerID             int64     `json:"server_id"`
	Name                 string    `json:"name"`
	VerificationToken    string    `json:"verification_token"`
	VerificationMethod   string    `json:"verification_method"`
	VerifiedAt           time.Time `json:"verified_at,omitzero"`
	DKIMPrivateKey       string    `json:"-"`
	DKIMIdentifierString string    `json:"dkim_identifier_string"`
	Outgoing             bool      `json:"outgoing"`
	Incoming             bool      `json:"incoming"`
	UseForAny            bool      `json:"use_for_any"`
	SPF                  DNSCheck  `json:"spf"`
	DKIM                 DNSCheck  `json:"dkim"`
	MX                   DNSCheck  `json:"mx"`
	ReturnPath           DNSCheck  `json:"return_path"`
	DNSCheckedAt         time.Time `json:"dns_checked_at,omitzero"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
}

// Verified reports whether the domain's ownership has been verified.
func (d *Domain) Verified() bool { return !d.VerifiedAt.IsZero() }

// Credential lets a client send as a server: an SMTP password, an API key,
// or (SMTP-IP) a source address range.
type Credential struct {
	ID         int64     `json:"id"`
	UUID       string    `json:"uuid"`
	ServerID   int64     `json:"server_id"`
	Type       string    `json:"type"`
	Name       string    `json:"name"`
	KeyHint    string    `json:"key_hint,omitempty"`
	CIDR       string    `json:"cidr,omitempty"`
	Hold       bool      `json:"hold"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// HashKey is how SMTP and API credential keys are stored: SHA-256, hex.
// Keys are long random strings, so a fast hash resists a dump being
// reversed while still allowing an indexed lookup by key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func newUUID() string {
	b := RandomToken(16)
	return b[0:8] + "-" + b[8:12] + "-4" + b[13:16] + "-a" + b[17:20] + "-" + b[20:32]
}

// CreateOrganization inserts an organisation. A duplicate permalink wraps ErrConflict.
func (s *Store) CreateOrganization(ctx context.Context, name, permalink string) (*Organization, error) {
	now := s.now()
	o := &Organization{UUID: newUUID(), Name: name, Permalink: permalink, TimeZone: "UTC", CreatedAt: now, UpdatedAt: now}
	err := s.queryRow(ctx, `INSERT INTO organizations (uuid, name, permalink, time_zone, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, o.UUID, name, permalink, o.TimeZone, now.UnixMicro(), now.UnixMicro()).Scan(&o.ID)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("organization %q: %w", permalink, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("create organization %q: %w", permalink, err)
	}
	return o, nil
}

const orgColumns = `id, uuid, name, permalink, time_zone, suspended_at, suspension_reason, created_at, updated_at`

func scanOrganization(sc interface{ Scan(...any) error }) (*Organization, error) {
	var (
		o                Organization
		susp             sql.NullInt64
		reason           sql.NullString
		created, updated int64
	)
	if err := sc.Scan(&o.ID, &o.UUID, &o.Name, &o.Permalink, &o.TimeZone, &susp, &reason, &created, &updated); err != nil {
		return nil, err
	}
	o.SuspendedAt = fromMicros(susp)
	o.SuspensionReason = reason.String
	o.CreatedAt, o.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
	return &o, nil
}

// Organization looks an organisation up by permalink.
func (s *Store) Organization(ctx context.Context, permalink string) (*Organization, error) {
	o, err := scanOrganization(s.queryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE permalink = ?`, permalink))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("organization %q: %w", permalink, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("organization %q: %w", permalink, err)
	}
	return o, nil
}

// Organizations lists every organisation by permalink.
func (s *Store) Organizations(ctx context.Context) ([]*Organization, error) {
	rows, err := s.query(ctx, `SELECT `+orgColumns+` FROM organizations ORDER BY permalink`)
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	defer rows.Close()
	var out []*Organization
	for rows.Next() {
		o, err := scanOrganization(rows)
		if err != nil {
			return nil, fmt.Errorf("list organizations: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteOrganization removes an organisation and everything it owns.
func (s *Store) DeleteOrganization(ctx context.Context, permalink string) error {
	res, err := s.exec(ctx, `DELETE FROM organizations WHERE permalink = ?`, permalink)
	if err != nil {
		return fmt.Errorf("delete organization %q: %w", permalink, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("organization %q: %w", permalink, ErrNotFound)
	}
	return nil
}

// NewServer holds the fields a new server is created with; zero values
// take Postal's defaults.
type NewServer struct {
	Name      string
	Permalink string
	Mode      string // ModeLive (default) or ModeDevelopment
	// SpamThreshold and SpamFailureThreshold, when set, are the new server's
	// thresholds (postal.default_spam_threshold and
	// postal.default_spam_failure_threshold, as Postal copies them); nil keeps
	// the schema's defaults (5 and 20).
	SpamThreshold        *float64
	SpamFailureThreshold *float64
}

// CreateServer inserts a server under the organisation with permalink org.
func (s *Store) CreateServer(ctx context.Context, org string, ns NewServer) (*Server, error) {
	o, err := s.Organization(ctx, org)
	if err != nil {
		return nil, err
	}
	mode := ns.Mode
	if mode == "" {
		mode = ModeLive
	}
	if mode != ModeLive && mode != ModeDevelopment {
		return nil, fmt.Errorf("server mode %q is not Live or Development", mode)
	}
	now := s.now()
	spam, spamFail := 5.0, 20.0
	if ns.SpamThreshold != nil {
		spam = *ns.SpamThreshold
	}
	if ns.SpamFailureThreshold != nil {
		spamFail = *ns.SpamFailureThreshold
	}
	var id int64
	err = s.queryRow(ctx, `INSERT INTO servers (uuid, organization_id, name, permalink, mode, token, spam_threshold,
		spam_failure_threshold, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		newUUID(), o.ID, ns.Name, ns.Permalink, mode, strings.ToLower(RandomToken(3)), spam, spamFail,
		now.UnixMicro(), now.UnixMicro()).Scan(&id)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("server %s/%s: %w", org, ns.Permalink, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("create server %s/%s: %w", org, ns.Permalink, err)
	}
	return s.ServerByID(ctx, id)
}

const serverColumns = `s.id, s.uuid, s.organization_id, o.permalink, s.name, s.permalink, s.mode, s.token, s.send_limit,
	s.message_retention_days, s.raw_message_retention_days, s.raw_message_retention_size, s.spam_threshold,
	s.spam_failure_threshold, s.outbound_spam_threshold, s.privacy_mode, s.allow_sender, s.log_smtp_data, s.require_tls, s.suspended_at,
	s.suspension_reason, s.created_at, s.updated_at`

const serverFrom = ` FROM servers s JOIN organizations o ON o.id = s.organization_id `

func scanServer(sc interface{ Scan(...any) error }) (*Server, error) {
	var (
		v                Server
		limit, susp      sql.NullInt64
		reason           sql.NullString
		outbound         sql.NullFloat64
		created, updated int64
	)
	if err := sc.Scan(&v.ID, &v.UUID, &v.OrganizationID, &v.OrganizationPermalink, &v.Name, &v.Permalink, &v.Mode, &v.Token, &limit,
		&v.MessageRetentionDays, &v.RawMessageRetentionDays, &v.RawMessageRetentionSize, &v.SpamThreshold,
		&v.SpamFailureThreshold, &outbound, &v.PrivacyMode, &v.AllowSender, &v.LogSMTPData, &v.RequireTLS, &susp,
		&reason, &created, &updated); err != nil {
		return nil, err
	}
	if limit.Valid {
		v.SendLimit = &limit.Int64
	}
	if outbound.Valid {
		v.OutboundSpamThreshold = &outbound.Float64
	}
	v.SuspendedAt = fromMicros(susp)
	v.SuspensionReason = reason.String
	v.CreatedAt, v.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
	return &v, nil
}

// ServerByID looks a server up by id.
func (s *Store) ServerByID(ctx context.Context, id int64) (*Server, error) {
	v, err := scanServer(s.queryRow(ctx, `SELECT `+serverColumns+serverFrom+`WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("server %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("server %d: %w", id, err)
	}
	return v, nil
}

// Server looks a server up by its ORG/SERVER path.
func (s *Store) Server(ctx context.Context, path string) (*Server, error) {
	org, srv, ok := strings.Cut(path, "/")
	if !ok || org == "" || srv == "" {
		return nil, fmt.Errorf("server %q: want ORG/SERVER", path)
	}
	v, err := scanServer(s.queryRow(ctx, `SELECT `+serverColumns+serverFrom+`WHERE o.permalink = ? AND s.permalink = ?`, org, srv))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("server %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", path, err)
	}
	return v, nil
}

// Servers lists servers, all of them or those of one organisation (org != "").
func (s *Store) Servers(ctx context.Context, org string) ([]*Server, error) {
	q := `SELECT ` + serverColumns + serverFrom
	var args []any
	if org != "" {
		q += `WHERE o.permalink = ? `
		args = append(args, org)
	}
	rows, err := s.query(ctx, q+`ORDER BY o.permalink, s.permalink`, args...)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	defer rows.Close()
	var out []*Server
	for rows.Next() {
		v, err := scanServer(rows)
		if err != nil {
			return nil, fmt.Errorf("list servers: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// NewDomain holds what a domain is created with. The DKIM key is generated
// by the caller (package dkim) and stored as PEM.
type NewDomain struct {
	Name                 string
	VerificationToken    string
	DKIMPrivateKey       string
	DKIMIdentifierString string
	Verified             bool
}

// CreateDomain adds a domain to a server. A duplicate name on the same
// server wraps ErrConflict.
func (s *Store) CreateDomain(ctx context.Context, serverID int64, nd NewDomain) (*Domain, error) {
	now := s.now()
	var verified any
	if nd.Verified {
		verified = now.UnixMicro()
	}
	name := strings.ToLower(strings.TrimSuffix(nd.Name, "."))
	var id int64
	err := s.queryRow(ctx, `INSERT INTO domains (uuid, server_id, name, verification_token, verification_method, verified_at,
		dkim_private_key, dkim_identifier_string, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'DNS', ?, ?, ?, ?, ?) RETURNING id`,
		newUUID(), serverID, name, nd.VerificationToken, verified, nd.DKIMPrivateKey, nd.DKIMIdentifierString,
		now.UnixMicro(), now.UnixMicro()).Scan(&id)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("domain %s: %w", name, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("create domain %s: %w", name, err)
	}
	return s.DomainByID(ctx, id)
}

const domainColumns = `id, uuid, server_id, name, verification_token, verification_method, verified_at, dkim_private_key,
	dkim_identifier_string, outgoing, incoming, use_for_any, spf_status, spf_error, dkim_status, dkim_error, mx_status,
	mx_error, return_path_status, return_path_error, dns_checked_at, created_at, updated_at`

func scanDomain(sc interface{ Scan(...any) error }) (*Domain, error) {
	var (
		d                              Domain
		verified, checked              sql.NullInt64
		spfS, spfE, dkS, dkE, mxS, mxE sql.NullString
		rpS, rpE                       sql.NullString
		created, updated               int64
	)
	if err := sc.Scan(&d.ID, &d.UUID, &d.ServerID, &d.Name, &d.VerificationToken, &d.VerificationMethod, &verified,
		&d.DKIMPrivateKey, &d.DKIMIdentifierString, &d.Outgoing, &d.Incoming, &d.UseForAny, &spfS, &spfE, &dkS, &dkE,
		&mxS, &mxE, &rpS, &rpE, &checked, &created, &updated); err != nil {
		return nil, err
	}
	d.VerifiedAt = fromMicros(verified)
	d.DNSCheckedAt = fromMicros(checked)
	d.SPF = DNSCheck{spfS.String, spfE.String}
	d.DKIM = DNSCheck{dkS.String, dkE.String}
	d.MX = DNSCheck{mxS.String, mxE.String}
	d.ReturnPath = DNSCheck{rpS.String, rpE.String}
	d.CreatedAt, d.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
	return &d, nil
}

// DomainByID looks a domain up by id.
func (s *Store) DomainByID(ctx context.Context, id int64) (*Domain, error) {
	d, err := scanDomain(s.queryRow(ctx, `SELECT `+domainColumns+` FROM domains WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("domain %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("domain %d: %w", id, err)
	}
	return d, nil
}

// ServerDomain looks up the domain called name on a server.
func (s *Store) ServerDomain(ctx context.Context, serverID int64, name string) (*Domain, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	d, err := scanDomain(s.queryRow(ctx, `SELECT `+domainColumns+` FROM domains WHERE server_id = ? AND name = ?`, serverID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("domain %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("domain %s: %w", name, err)
	}
	return d, nil
}

// Domains lists a server's domains by name.
func (s *Store) Domains(ctx context.Context, serverID int64) ([]*Domain, error) {
	return s.listDomains(ctx, `SELECT `+domainColumns+` FROM domains WHERE server_id = ? ORDER BY name`, serverID)
}

// DomainsNamed lists every server's domain called name (a domain may be
// added to several servers; only one can verify it in practice).
func (s *Store) DomainsNamed(ctx context.Context, name string) ([]*Domain, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	return s.listDomains(ctx, `SELECT `+domainColumns+` FROM domains WHERE name = ? ORDER BY id`, name)
}

func (s *Store) listDomains(ctx context.Context, q string, args ...any) ([]*Domain, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	var out []*Domain
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("list domains: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetDomainVerified marks a domain verified now (or unverified with false).
func (s *Store) SetDomainVerified(ctx context.Context, id int64, verified bool) error {
	now := s.now()
	var at any
	if verified {
		at = now.UnixMicro()
	}
	_, err := s.exec(ctx, `UPDATE domains SET verified_at = ?, updated_at = ? WHERE id = ?`, at, now.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("verify domain %d: %w", id, err)
	}
	return nil
}

// NewCredential holds what a credential is created with. For SMTP and API
// credentials Key is the secret (stored only as HashKey(Key)); for SMTP-IP
// it is the source CIDR, stored as is.
type NewCredential struct {
	Type string
	Name string
	Key  string
	Hold bool
}

// CreateCredential adds a credential to a server.
func (s *Store) CreateCredential(ctx context.Context, serverID int64, nc NewCredential) (*Credential, error) {
	now := s.now()
	var hash, cidr any
	hint := ""
	switch nc.Type {
	case CredentialSMTP, CredentialAPI:
		if len(nc.Key) < 16 {
			return nil, fmt.Errorf("credential key must be at least 16 characters")
		}
		hash = HashKey(nc.Key)
		hint = nc.Key[:4]
	case CredentialSMTPIP:
		cidr = nc.Key
	default:
		return nil, fmt.Errorf("credential type %q is not SMTP, API or SMTP-IP", nc.Type)
	}
	var id int64
	err := s.queryRow(ctx, `INSERT INTO credentials (uuid, server_id, type, name, key_hash, key_hint, cidr, hold, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		newUUID(), serverID, nc.Type, nc.Name, hash, hint, cidr, nc.Hold, now.UnixMicro(), now.UnixMicro()).Scan(&id)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("credential key: %w", ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("create credential: %w", err)
	}
	return s.credential(ctx, `WHERE id = ?`, id)
}

const credentialColumns = `id, uuid, server_id, type, name, key_hint, cidr, hold, last_used_at, created_at, updated_at`

func scanCredential(sc interface{ Scan(...any) error }) (*Credential, error) {
	var (
		c                Credential
		cidr             sql.NullString
		used             sql.NullInt64
		created, updated int64
	)
	if err := sc.Scan(&c.ID, &c.UUID, &c.ServerID, &c.Type, &c.Name, &c.KeyHint, &cidr, &c.Hold, &used, &created, &updated); err != nil {
		return nil, err
	}
	c.CIDR = cidr.String
	c.LastUsedAt = fromMicros(used)
	c.CreatedAt, c.UpdatedAt = time.UnixMicro(created), time.UnixMicro(updated)
	return &c, nil
}

func (s *Store) credential(ctx context.Context, where string, args ...any) (*Credential, error) {
	c, err := scanCredential(s.queryRow(ctx, `SELECT `+credentialColumns+` FROM credentials `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("credential: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	return c, nil
}

// CredentialByKey finds the SMTP or API credential (of type typ) whose key
// is key. The lookup is by the key's SHA-256, so timing reveals nothing
// about stored keys. An unknown key wraps ErrNotFound.
func (s *Store) CredentialByKey(ctx context.Context, typ, key string) (*Credential, error) {
	return s.credential(ctx, `WHERE key_hash = ? AND type = ?`, HashKey(key), typ)
}

// Credentials lists a server's credentials, or every server's SMTP-IP
// credentials when serverID is 0 and typ is CredentialSMTPIP. typ "" means
// all types.
func (s *Store) Credentials(ctx context.Context, serverID int64, typ string) ([]*Credential, error) {
	q := `SELECT ` + credentialColumns + ` FROM credentials WHERE 1 = 1`
	var args []any
	if serverID != 0 {
		q += ` AND server_id = ?`
		args = append(args, serverID)
	}
	if typ != "" {
		q += ` AND type = ?`
		args = append(args, typ)
	}
	rows, err := s.query(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	var out []*Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// TouchCredential records that a credential was just used.
func (s *Store) TouchCredential(ctx context.Context, id int64) error {
	if _, err := s.exec(ctx, `UPDATE credentials SET last_used_at = ? WHERE id = ?`, s.now().UnixMicro(), id); err != nil {
		return fmt.Errorf("touch credential %d: %w", id, err)
	}
	return nil
}
