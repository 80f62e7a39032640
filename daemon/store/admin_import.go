package store

// This file holds the write side of `postalctl import-postal`: records
// brought over from a Postal installation are upserted by the identity they
// had there (Postal's uuid, or the natural key where Postal has none), so a
// second import updates what changed and leaves the rest alone. Everything
// one import writes happens in one transaction: it lands whole or not at all.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ImportChange says what an import did to one record.
type ImportChange string

// The outcomes of upserting one record.
const (
	ImportCreated   ImportChange = "created"
	ImportUpdated   ImportChange = "updated"
	ImportUnchanged ImportChange = "unchanged"
)

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

// Import is one import transaction. Its methods upsert one record each and
// return the local id and what changed. It is used only inside the function
// given to Store.Import and must not be kept after it returns.
type Import struct {
	t   tx
	now int64
}

// Import runs fn in one transaction and commits it when fn returns nil and
// dryRun is false. With dryRun the transaction is always rolled back, so fn
// sees exactly what a real run would change (ids of created rows included)
// and nothing is kept. A failure anywhere leaves the database as it was.
func (s *Store) Import(ctx context.Context, dryRun bool, fn func(*Import) error) error {
	err := s.inTx(ctx, func(t tx) error {
		if err := fn(&Import{t: t, now: s.now().UnixMicro()}); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if dryRun && errors.Is(err, errDryRun) {
		return nil
	}
	return err
}

// ImportUUID returns a stable UUID-shaped identity for a record that has no
// uuid of its own in the source (old Postal rows, or a record copied to
// several owners): the same parts always give the same value.
func ImportUUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-5" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// kv is one column and the value to write.
type kv struct {
	col string
	v   any
}

// upsert finds the row of table whose key columns equal key. When none
// exists it inserts key, cols and insertOnly (plus created_at/updated_at
// when stamp is set); when one exists and a column of cols differs, it
// updates cols (and updated_at when stamp is set). insertOnly columns are
// written once and never compared: they hold state this installation keeps
// up to date itself (last use, DNS check results).
func (im *Import) upsert(ctx context.Context, table string, key, cols, insertOnly []kv, created int64, stamp bool) (int64, ImportChange, error) {
	var q strings.Builder
	q.WriteString("SELECT id, CASE WHEN ")
	args := make([]any, 0, len(cols)+len(key))
	if len(cols) == 0 {
		q.WriteString("1 = 1")
	}
	for i, c := range cols {
		if i > 0 {
			q.WriteString(" AND ")
		}
		q.WriteString("(" + c.col + " IS NOT DISTINCT FROM ?)")
		args = append(args, c.v)
	}
	q.WriteString(" THEN 1 ELSE 0 END FROM " + table + " WHERE ")
	for i, c := range key {
		if i > 0 {
			q.WriteString(" AND ")
		}
		q.WriteString(c.col + " = ?")
		args = append(args, c.v)
	}
	var id, same int64
	err := im.t.queryRow(ctx, q.String(), args...).Scan(&id, &same)
	switch {
	case err == nil && same == 1:
		return id, ImportUnchanged, nil
	case err == nil:
		var u strings.Builder
		u.WriteString("UPDATE " + table + " SET ")
		uargs := make([]any, 0, len(cols)+2)
		for i, c := range cols {
			if i > 0 {
				u.WriteString(", ")
			}
			u.WriteString(c.col + " = ?")
			uargs = append(uargs, c.v)
		}
		if stamp {
			u.WriteString(", updated_at = ?")
			uargs = append(uargs, im.now)
		}
		u.WriteString(" WHERE id = ?")
		uargs = append(uargs, id)
		if _, err := im.t.exec(ctx, u.String(), uargs...); err != nil {
			if isUniqueViolation(err) {
				return 0, "", fmt.Errorf("update %s %d: %w", table, id, ErrConflict)
			}
			return 0, "", fmt.Errorf("update %s %d: %w", table, id, err)
		}
		return id, ImportUpdated, nil
	case !errors.Is(err, sql.ErrNoRows):
		return 0, "", fmt.Errorf("find %s: %w", table, err)
	}
	all := make([]kv, 0, len(key)+len(cols)+len(insertOnly)+2)
	all = append(append(append(all, key...), cols...), insertOnly...)
	if stamp {
		if created == 0 {
			created = im.now
		}
		all = append(all, kv{"created_at", created}, kv{"updated_at", im.now})
	}
	names := make([]string, len(all))
	marks := make([]string, len(all))
	iargs := make([]any, len(all))
	for i, c := range all {
		names[i], marks[i], iargs[i] = c.col, "?", c.v
	}
	err = im.t.queryRow(ctx, "INSERT INTO "+table+" ("+strings.Join(names, ", ")+") VALUES ("+
		strings.Join(marks, ", ")+") RETURNING id", iargs...).Scan(&id)
	if isUniqueViolation(err) {
		return 0, "", fmt.Errorf("insert into %s: %w", table, ErrConflict)
	}
	if err != nil {
		return 0, "", fmt.Errorf("insert into %s: %w", table, err)
	}
	return id, ImportCreated, nil
}

// ImportOrganization is an organisation as the source holds it.
type ImportOrganization struct {
	UUID             string
	Name             string
	Permalink        string
	TimeZone         string
	SuspendedAt      time.Time
	SuspensionReason string
	CreatedAt        time.Time
}

// Organization upserts an organisation by UUID. A different organisation
// already using the permalink wraps ErrConflict.
func (im *Import) Organization(ctx context.Context, o ImportOrganization) (int64, ImportChange, error) {
	tz := o.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	id, ch, err := im.upsert(ctx, "organizations", []kv{{"uuid", o.UUID}}, []kv{
		{"name", o.Name}, {"permalink", o.Permalink}, {"time_zone", tz},
		{"suspended_at", micros(o.SuspendedAt)}, {"suspension_reason", nullString(o.SuspensionReason)},
	}, nil, micros0(o.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("organization %q: %w", o.Permalink, err)
	}
	return id, ch, nil
}

// ImportServer is a mail server as the source holds it. Token is kept, so
// return-path addresses (<token>@<dns.return_path_domain>) keep working.
type ImportServer struct {
	UUID                    string
	OrganizationID          int64
	Name                    string
	Permalink               string
	Mode                    string
	Token                   string
	IPPoolID                int64
	SendLimit               *int64
	MessageRetentionDays    int
	RawMessageRetentionDays int
	RawMessageRetentionSize int
	SpamThreshold           float64
	SpamFailureThreshold    float64
	OutboundSpamThreshold   *float64
	PrivacyMode             bool
	AllowSender             bool
	LogSMTPData             bool
	SuspendedAt             time.Time
	SuspensionReason        string
	CreatedAt               time.Time
}

// Server upserts a server by UUID. The token is stored in lower case (tokens
// are matched case-insensitively); a token or ORG/SERVER permalink already
// used by another server wraps ErrConflict.
func (im *Import) Server(ctx context.Context, v ImportServer) (int64, ImportChange, error) {
	if v.Mode != ModeLive && v.Mode != ModeDevelopment {
		return 0, "", fmt.Errorf("server %q: mode %q is not Live or Development", v.Permalink, v.Mode)
	}
	if v.Token == "" {
		return 0, "", fmt.Errorf("server %q: no token", v.Permalink)
	}
	var limit, outbound any
	if v.SendLimit != nil {
		limit = *v.SendLimit
	}
	if v.OutboundSpamThreshold != nil {
		outbound = *v.OutboundSpamThreshold
	}
	id, ch, err := im.upsert(ctx, "servers", []kv{{"uuid", v.UUID}}, []kv{
		{"organization_id", v.OrganizationID}, {"name", v.Name}, {"permalink", v.Permalink}, {"mode", v.Mode},
		{"token", strings.ToLower(v.Token)}, {"ip_pool_id", nullID(v.IPPoolID)}, {"send_limit", limit},
		{"message_retention_days", v.MessageRetentionDays}, {"raw_message_retention_days", v.RawMessageRetentionDays},
		{"raw_message_retention_size", v.RawMessageRetentionSize}, {"spam_threshold", v.SpamThreshold},
		{"spam_failure_threshold", v.SpamFailureThreshold}, {"outbound_spam_threshold", outbound},
		{"privacy_mode", v.PrivacyMode}, {"allow_sender", v.AllowSender}, {"log_smtp_data", v.LogSMTPData},
		{"suspended_at", micros(v.SuspendedAt)}, {"suspension_reason", nullString(v.SuspensionReason)},
	}, nil, micros0(v.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("server %q: %w", v.Permalink, err)
	}
	return id, ch, nil
}

// ImportDomain is a domain as the source holds it. The DKIM private key and
// identifier string are kept, so the selector and the published DKIM record
// stay valid; the verification state is kept too.
type ImportDomain struct {
	UUID                 string
	ServerID             int64
	Name                 string
	VerificationToken    string
	VerificationMethod   string
	VerifiedAt           time.Time
	DKIMPrivateKey       string
	DKIMIdentifierString string
	Outgoing             bool
	Incoming             bool
	UseForAny            bool
	SPF                  DNSCheck
	DKIM                 DNSCheck
	MX                   DNSCheck
	ReturnPath           DNSCheck
	DNSCheckedAt         time.Time
	CreatedAt            time.Time
}

// Domain upserts a domain by UUID. DNS check results are written when the
// domain is created and then left to this installation's own checks.
func (im *Import) Domain(ctx context.Context, d ImportDomain) (int64, ImportChange, error) {
	name := strings.ToLower(strings.TrimSuffix(d.Name, "."))
	method := d.VerificationMethod
	if method == "" {
		method = "DNS"
	}
	id, ch, err := im.upsert(ctx, "domains", []kv{{"uuid", d.UUID}}, []kv{
		{"server_id", d.ServerID}, {"name", name}, {"verification_token", d.VerificationToken},
		{"verification_method", method}, {"verified_at", micros(d.VerifiedAt)}, {"dkim_private_key", d.DKIMPrivateKey},
		{"dkim_identifier_string", d.DKIMIdentifierString}, {"outgoing", d.Outgoing}, {"incoming", d.Incoming},
		{"use_for_any", d.UseForAny},
	}, []kv{
		{"spf_status", nullString(d.SPF.Status)}, {"spf_error", nullString(d.SPF.Error)},
		{"dkim_status", nullString(d.DKIM.Status)}, {"dkim_error", nullString(d.DKIM.Error)},
		{"mx_status", nullString(d.MX.Status)}, {"mx_error", nullString(d.MX.Error)},
		{"return_path_status", nullString(d.ReturnPath.Status)}, {"return_path_error", nullString(d.ReturnPath.Error)},
		{"dns_checked_at", micros(d.DNSCheckedAt)},
	}, micros0(d.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("domain %s: %w", name, err)
	}
	return id, ch, nil
}

// ImportCredential is a credential as the source holds it. For SMTP and API
// credentials Key is the clear key (only its HashKey and first four
// characters are stored, so it keeps authenticating); for SMTP-IP it is the
// address or CIDR.
type ImportCredential struct {
	UUID       string
	ServerID   int64
	Type       string
	Name       string
	Key        string
	Hold       bool
	LastUsedAt time.Time
	CreatedAt  time.Time
}

// Credential upserts a credential by UUID. A key that another credential
// already has wraps ErrConflict.
func (im *Import) Credential(ctx context.Context, c ImportCredential) (int64, ImportChange, error) {
	var hash, cidr any
	hint := ""
	switch c.Type {
	case CredentialSMTP, CredentialAPI:
		if c.Key == "" {
			return 0, "", fmt.Errorf("credential %q: empty key", c.Name)
		}
		hash = HashKey(c.Key)
		hint = c.Key[:min(4, len(c.Key))]
	case CredentialSMTPIP:
		if c.Key == "" {
			return 0, "", fmt.Errorf("credential %q: empty network", c.Name)
		}
		cidr = c.Key
	default:
		return 0, "", fmt.Errorf("credential %q: type %q is not SMTP, API or SMTP-IP", c.Name, c.Type)
	}
	id, ch, err := im.upsert(ctx, "credentials", []kv{{"uuid", c.UUID}}, []kv{
		{"server_id", c.ServerID}, {"type", c.Type}, {"name", c.Name}, {"key_hash", hash}, {"key_hint", hint},
		{"cidr", cidr}, {"hold", c.Hold},
	}, []kv{{"last_used_at", micros(c.LastUsedAt)}}, micros0(c.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("credential %q: %w", c.Name, err)
	}
	return id, ch, nil
}

// ImportHTTPEndpoint is an HTTP endpoint as the source holds it.
type ImportHTTPEndpoint struct {
	UUID               string
	ServerID           int64
	Name               string
	URL                string
	Encoding           string
	Format             string
	StripReplies       bool
	IncludeAttachments bool
	Timeout            int
	CreatedAt          time.Time
}

// HTTPEndpoint upserts an HTTP endpoint by UUID.
func (im *Import) HTTPEndpoint(ctx context.Context, e ImportHTTPEndpoint) (int64, ImportChange, error) {
	enc, format, timeout := e.Encoding, e.Format, e.Timeout
	if enc == "" {
		enc = "BodyAsJSON"
	}
	if format == "" {
		format = "Hash"
	}
	if timeout <= 0 {
		timeout = 5
	}
	id, ch, err := im.upsert(ctx, "http_endpoints", []kv{{"uuid", e.UUID}}, []kv{
		{"server_id", e.ServerID}, {"name", e.Name}, {"url", e.URL}, {"encoding", enc}, {"format", format},
		{"strip_replies", e.StripReplies}, {"include_attachments", e.IncludeAttachments}, {"timeout", timeout},
	}, nil, micros0(e.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("HTTP endpoint %q: %w", e.Name, err)
	}
	return id, ch, nil
}

// ImportSMTPEndpoint is an SMTP endpoint as the source holds it.
type ImportSMTPEndpoint struct {
	UUID      string
	ServerID  int64
	Name      string
	Hostname  string
	Port      int
	SSLMode   string
	CreatedAt time.Time
}

// SMTPEndpoint upserts an SMTP endpoint by UUID.
func (im *Import) SMTPEndpoint(ctx context.Context, e ImportSMTPEndpoint) (int64, ImportChange, error) {
	port, mode := e.Port, e.SSLMode
	if port <= 0 {
		port = 25
	}
	if mode == "" {
		mode = "Auto"
	}
	id, ch, err := im.upsert(ctx, "smtp_endpoints", []kv{{"uuid", e.UUID}}, []kv{
		{"server_id", e.ServerID}, {"name", e.Name}, {"hostname", e.Hostname}, {"port", port}, {"ssl_mode", mode},
	}, nil, micros0(e.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("SMTP endpoint %q: %w", e.Name, err)
	}
	return id, ch, nil
}

// ImportAddressEndpoint is an address endpoint as the source holds it.
type ImportAddressEndpoint struct {
	UUID      string
	ServerID  int64
	Address   string
	CreatedAt time.Time
}

// AddressEndpoint upserts an address endpoint by UUID.
func (im *Import) AddressEndpoint(ctx context.Context, e ImportAddressEndpoint) (int64, ImportChange, error) {
	id, ch, err := im.upsert(ctx, "address_endpoints", []kv{{"uuid", e.UUID}}, []kv{
		{"server_id", e.ServerID}, {"address", e.Address},
	}, nil, micros0(e.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("address endpoint %q: %w", e.Address, err)
	}
	return id, ch, nil
}

// ImportRoute is a route as the source holds it. Token is kept, so the
// route's address at dns.route_domain keeps working. DomainID 0 is a route
// without a domain (the return-path route); EndpointType is "" unless Mode
// is Endpoint.
type ImportRoute struct {
	UUID         string
	ServerID     int64
	DomainID     int64
	Name         string
	Token        string
	Mode         string
	SpamMode     string
	EndpointType string
	EndpointID   int64
	CreatedAt    time.Time
}

// Route upserts a route by UUID. A token another route has, or a second
// route of the same name on the domain, wraps ErrConflict.
func (im *Import) Route(ctx context.Context, r ImportRoute) (int64, ImportChange, error) {
	mode, spam := r.Mode, r.SpamMode
	if mode == "" {
		mode = RouteModeEndpoint
	}
	if spam == "" {
		spam = SpamModeMark
	}
	if !validRouteMode(mode) {
		return 0, "", fmt.Errorf("route %q: mode %q is not Endpoint, Accept, Hold, Bounce or Reject", r.Name, mode)
	}
	if !validSpamMode(spam) {
		return 0, "", fmt.Errorf("route %q: spam mode %q is not Mark, Quarantine or Fail", r.Name, spam)
	}
	var etype, eid any
	if r.EndpointType != "" && r.EndpointID != 0 {
		etype, eid = r.EndpointType, r.EndpointID
	}
	id, ch, err := im.upsert(ctx, "routes", []kv{{"uuid", r.UUID}}, []kv{
		{"server_id", r.ServerID}, {"domain_id", nullID(r.DomainID)}, {"name", strings.ToLower(r.Name)},
		{"token", strings.ToLower(r.Token)}, {"mode", mode}, {"spam_mode", spam},
		{"endpoint_type", etype}, {"endpoint_id", eid},
	}, nil, micros0(r.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("route %q: %w", r.Name, err)
	}
	return id, ch, nil
}

// RouteEndpoint adds endpoint (endpointType, endpointID) to route routeID's
// additional endpoints unless it is there already (ImportUnchanged).
func (im *Import) RouteEndpoint(ctx context.Context, routeID int64, endpointType string, endpointID int64) (int64, ImportChange, error) {
	if _, ok := endpointTables[endpointType]; !ok {
		return 0, "", fmt.Errorf("additional endpoint of route %d: type %q is not an endpoint type", routeID, endpointType)
	}
	id, ch, err := im.upsert(ctx, "route_additional_endpoints", []kv{{"route_id", routeID}, {"endpoint_type", endpointType},
		{"endpoint_id", endpointID}}, nil, []kv{{"created_at", im.now}}, 0, false)
	if err != nil {
		return 0, "", fmt.Errorf("additional endpoint of route %d: %w", routeID, err)
	}
	return id, ch, nil
}

// ImportWebhook is a webhook as the source holds it, with the events it is
// subscribed to (ignored when AllEvents).
type ImportWebhook struct {
	UUID      string
	ServerID  int64
	Name      string
	URL       string
	AllEvents bool
	Enabled   bool
	Sign      bool
	Events    []string
	CreatedAt time.Time
}

// Webhook upserts a webhook by UUID and makes its event list equal to
// Events; a change of the list alone counts as an update.
func (im *Import) Webhook(ctx context.Context, w ImportWebhook) (int64, ImportChange, error) {
	id, ch, err := im.upsert(ctx, "webhooks", []kv{{"uuid", w.UUID}}, []kv{
		{"server_id", w.ServerID}, {"name", w.Name}, {"url", w.URL}, {"all_events", w.AllEvents},
		{"enabled", w.Enabled}, {"sign", w.Sign},
	}, nil, micros0(w.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("webhook %q: %w", w.Name, err)
	}
	want := make(map[string]bool)
	for _, e := range w.Events {
		want[e] = true
	}
	rows, err := im.t.query(ctx, `SELECT event FROM webhook_events WHERE webhook_id = ?`, id)
	if err != nil {
		return 0, "", fmt.Errorf("webhook %q events: %w", w.Name, err)
	}
	have := make(map[string]bool)
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			rows.Close()
			return 0, "", fmt.Errorf("webhook %q events: %w", w.Name, err)
		}
		have[e] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("webhook %q events: %w", w.Name, err)
	}
	changed := false
	for _, e := range sortedKeys(have) {
		if !want[e] {
			if _, err := im.t.exec(ctx, `DELETE FROM webhook_events WHERE webhook_id = ? AND event = ?`, id, e); err != nil {
				return 0, "", fmt.Errorf("webhook %q events: %w", w.Name, err)
			}
			changed = true
		}
	}
	for _, e := range sortedKeys(want) {
		if !have[e] {
			if _, err := im.t.exec(ctx, `INSERT INTO webhook_events (webhook_id, event, created_at) VALUES (?, ?, ?)`,
				id, e, im.now); err != nil {
				return 0, "", fmt.Errorf("webhook %q events: %w", w.Name, err)
			}
			changed = true
		}
	}
	if changed && ch == ImportUnchanged {
		ch = ImportUpdated
	}
	return id, ch, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ImportIPPool is an IP pool as the source holds it.
type ImportIPPool struct {
	UUID      string
	Name      string
	Default   bool
	CreatedAt time.Time
}

// IPPool upserts an IP pool by UUID. Another pool of the same name wraps
// ErrConflict.
func (im *Import) IPPool(ctx context.Context, p ImportIPPool) (int64, ImportChange, error) {
	id, ch, err := im.upsert(ctx, "ip_pools", []kv{{"uuid", p.UUID}}, []kv{
		{"name", p.Name}, {"is_default", p.Default},
	}, nil, micros0(p.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("IP pool %q: %w", p.Name, err)
	}
	return id, ch, nil
}

// ImportIPAddress is an address of an IP pool, identified by its IPv4.
type ImportIPAddress struct {
	PoolID    int64
	IPv4      string
	IPv6      string
	Hostname  string
	Priority  int
	CreatedAt time.Time
}

// IPAddress upserts an IP address by its IPv4 address.
func (im *Import) IPAddress(ctx context.Context, a ImportIPAddress) (int64, ImportChange, error) {
	id, ch, err := im.upsert(ctx, "ip_addresses", []kv{{"ipv4", a.IPv4}}, []kv{
		{"ip_pool_id", a.PoolID}, {"ipv6", nullString(a.IPv6)}, {"hostname", a.Hostname}, {"priority", a.Priority},
	}, nil, micros0(a.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("IP address %s: %w", a.IPv4, err)
	}
	return id, ch, nil
}

// ImportIPPoolRule is an IP pool rule owned by an organisation or (when
// ServerID is set) a server.
type ImportIPPoolRule struct {
	UUID           string
	OrganizationID int64
	ServerID       int64
	PoolID         int64
	From           []string
	To             []string
	CreatedAt      time.Time
}

// IPPoolRule upserts an IP pool rule by UUID.
func (im *Import) IPPoolRule(ctx context.Context, r ImportIPPoolRule) (int64, ImportChange, error) {
	org := r.OrganizationID
	if r.ServerID != 0 {
		org = 0
	}
	id, ch, err := im.upsert(ctx, "ip_pool_rules", []kv{{"uuid", r.UUID}}, []kv{
		{"organization_id", nullID(org)}, {"server_id", nullID(r.ServerID)}, {"ip_pool_id", r.PoolID},
		{"from_text", nullString(strings.Join(r.From, "\n"))}, {"to_text", nullString(strings.Join(r.To, "\n"))},
	}, nil, micros0(r.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("IP pool rule %s: %w", r.UUID, err)
	}
	return id, ch, nil
}

// ImportTrackDomain is a track domain as the source holds it.
type ImportTrackDomain struct {
	UUID                 string
	ServerID             int64
	DomainID             int64
	Name                 string
	SSLEnabled           bool
	TrackClicks          bool
	TrackLoads           bool
	ExcludedClickDomains []string
	DNS                  DNSCheck
	DNSCheckedAt         time.Time
	CreatedAt            time.Time
}

// TrackDomain upserts a track domain by UUID.
func (im *Import) TrackDomain(ctx context.Context, d ImportTrackDomain) (int64, ImportChange, error) {
	id, ch, err := im.upsert(ctx, "track_domains", []kv{{"uuid", d.UUID}}, []kv{
		{"server_id", d.ServerID}, {"domain_id", d.DomainID}, {"name", strings.ToLower(d.Name)},
		{"ssl_enabled", d.SSLEnabled}, {"track_clicks", d.TrackClicks}, {"track_loads", d.TrackLoads},
		{"excluded_click_domains", nullString(strings.Join(d.ExcludedClickDomains, "\n"))},
	}, []kv{
		{"dns_status", nullString(d.DNS.Status)}, {"dns_error", nullString(d.DNS.Error)},
		{"dns_checked_at", micros(d.DNSCheckedAt)},
	}, micros0(d.CreatedAt), true)
	if err != nil {
		return 0, "", fmt.Errorf("track domain %s: %w", d.Name, err)
	}
	return id, ch, nil
}

// ImportSuppression is one entry of a server's suppression list.
type ImportSuppression struct {
	ServerID  int64
	Type      string
	Address   string
	Reason    string
	Timestamp time.Time
	KeepUntil time.Time
}

// Suppression upserts a suppression by (server, type, address). The
// address is stored in lower case.
func (im *Import) Suppression(ctx context.Context, sp ImportSuppression) (int64, ImportChange, error) {
	typ := sp.Type
	if typ == "" {
		typ = "recipient"
	}
	addr := strings.ToLower(sp.Address)
	id, ch, err := im.upsert(ctx, "suppressions", []kv{{"server_id", sp.ServerID}, {"type", typ}, {"address", addr}},
		[]kv{{"reason", sp.Reason}, {"timestamp", micros0(sp.Timestamp)}, {"keep_until", micros0(sp.KeepUntil)}},
		nil, 0, false)
	if err != nil {
		return 0, "", fmt.Errorf("suppression %s: %w", addr, err)
	}
	return id, ch, nil
}

// micros0 is micros for NOT NULL columns: the zero time is 0.
func micros0(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
