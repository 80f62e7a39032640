package importpostal

// This file reads a Postal installation's MariaDB: the main database and
// the per-server message databases (suppressions only). It checks the shape
// of every table it reads first, so a database that is not Postal's (or a
// version it does not know) is refused with one line naming what is missing.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// Conn says how to reach one MariaDB server.
type Conn struct {
	Host     string
	Port     int
	Username string
	Password string
}

// Addr is host:port.
func (c Conn) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Source says where Postal's data is.
type Source struct {
	// Main reaches the main database, named MainDatabase.
	Main         Conn
	MainDatabase string
	// Message reaches the message databases, named <MessagePrefix>-server-<id>.
	Message       Conn
	MessagePrefix string
}

// openDB connects to one database and checks that it answers.
func openDB(ctx context.Context, c Conn, database string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = c.Username, c.Password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", c.Addr(), database
	if strings.HasPrefix(c.Host, "/") {
		cfg.Net, cfg.Addr = "unix", c.Host
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	cfg.Timeout, cfg.ReadTimeout = 10*time.Second, time.Minute
	cfg.Collation = "utf8mb4_general_ci"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("Postal database %s at %s: %w", database, c.Addr(), err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, &UnreachableError{Addr: c.Addr(), Database: database, Err: err}
	}
	return db, nil
}

// UnreachableError is returned when Postal's MariaDB does not answer or
// refuses the login.
type UnreachableError struct {
	Addr, Database string
	Err            error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach Postal's database %s at %s (%v); check main_db in postal.yml or the --host, --port, --username and --password flags",
		e.Database, e.Addr, firstLine(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// SchemaError is returned when the database lacks a table or column the
// importer reads: it is not Postal's, or from a version it does not know.
type SchemaError struct {
	Database string
	Missing  []string // "table" or "table.column"
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("database %s is not a Postal 2/3 main database this importer knows: missing %s", e.Database,
		strings.Join(e.Missing, ", "))
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// schema lists the tables and columns read from the main database.
var schema = map[string][]string{
	"organizations":              {"id", "uuid", "name", "permalink", "time_zone", "created_at", "deleted_at", "suspended_at", "suspension_reason"},
	"servers":                    {"id", "organization_id", "uuid", "name", "mode", "ip_pool_id", "created_at", "permalink", "send_limit", "deleted_at", "message_retention_days", "raw_message_retention_days", "raw_message_retention_size", "allow_sender", "token", "spam_threshold", "spam_failure_threshold", "suspended_at", "outbound_spam_threshold", "suspension_reason", "log_smtp_data", "privacy_mode"},
	"domains":                    {"id", "server_id", "uuid", "name", "verification_token", "verification_method", "verified_at", "dkim_private_key", "created_at", "dns_checked_at", "spf_status", "spf_error", "dkim_status", "dkim_error", "mx_status", "mx_error", "return_path_status", "return_path_error", "outgoing", "incoming", "owner_type", "owner_id", "dkim_identifier_string", "use_for_any"},
	"credentials":                {"id", "server_id", "key", "type", "name", "last_used_at", "created_at", "hold", "uuid"},
	"routes":                     {"id", "uuid", "server_id", "domain_id", "endpoint_id", "endpoint_type", "name", "spam_mode", "created_at", "token", "mode"},
	"additional_route_endpoints": {"id", "route_id", "endpoint_type", "endpoint_id"},
	"http_endpoints":             {"id", "server_id", "uuid", "name", "url", "encoding", "format", "strip_replies", "created_at", "include_attachments", "timeout"},
	"smtp_endpoints":             {"id", "server_id", "uuid", "name", "hostname", "ssl_mode", "port", "created_at"},
	"address_endpoints":          {"id", "server_id", "uuid", "address", "created_at"},
	"webhooks":                   {"id", "server_id", "uuid", "name", "url", "all_events", "enabled", "sign", "created_at"},
	"webhook_events":             {"id", "webhook_id", "event"},
	"ip_pools":                   {"id", "name", "uuid", "created_at", "default"},
	"ip_addresses":               {"id", "ip_pool_id", "ipv4", "ipv6", "created_at", "hostname", "priority"},
	"ip_pool_rules":              {"id", "uuid", "owner_type", "owner_id", "ip_pool_id", "from_text", "to_text", "created_at"},
	"track_domains":              {"id", "uuid", "server_id", "domain_id", "name", "dns_checked_at", "dns_status", "dns_error", "created_at", "ssl_enabled", "track_clicks", "track_loads", "excluded_click_domains"},
}

// checkSchema reports every table or column of schema the database lacks.
func checkSchema(ctx context.Context, db *sql.DB, database string) error {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?`, database)
	if err != nil {
		return fmt.Errorf("read the schema of %s: %w", database, err)
	}
	defer rows.Close()
	have := make(map[string]map[string]bool)
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return fmt.Errorf("read the schema of %s: %w", database, err)
		}
		if have[table] == nil {
			have[table] = make(map[string]bool)
		}
		have[table][col] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the schema of %s: %w", database, err)
	}
	var missing []string
	for table, cols := range schema {
		if have[table] == nil {
			missing = append(missing, table)
			continue
		}
		for _, c := range cols {
			if !have[table][c] {
				missing = append(missing, table+"."+c)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		if len(missing) > 6 {
			missing = append(missing[:6], fmt.Sprintf("and %d more", len(missing)-6))
		}
		return &SchemaError{Database: database, Missing: missing}
	}
	return nil
}

// Caps on what is read: Postal's own columns are varchar(255) or text; a
// value beyond these is refused rather than stored cut.
const (
	maxShort = 255
	maxText  = 64 << 10
	maxRows  = 5_000_000
)

// text makes a foreign string valid UTF-8 and checks its length.
func text(table, col string, id int64, v sql.NullString, limit int) (string, error) {
	s := v.String
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > limit {
		return "", fmt.Errorf("%s %d: %s is %d bytes, more than %d", table, id, col, len(s), limit)
	}
	return s, nil
}

// Snapshot is what was read from Postal: the rows of every table the
// importer uses, live rows only (soft-deleted organisations and servers and
// everything under them are left out).
type Snapshot struct {
	Organizations []Organization
	Servers       []Server
	Domains       []Domain
	Credentials   []Credential
	HTTPEndpoints []HTTPEndpoint
	SMTPEndpoints []SMTPEndpoint
	AddrEndpoints []AddressEndpoint
	Routes        []Route
	// ExtraEndpoints are the additional_route_endpoints rows of the routes
	// read.
	ExtraEndpoints []ExtraEndpoint
	Webhooks       []Webhook
	IPPools        []IPPool
	IPAddresses    []IPAddress
	IPPoolRules    []IPPoolRule
	TrackDomains   []TrackDomain
	// Suppressions holds each server's list, by Postal server id.
	Suppressions map[int64][]Suppression
	// Warnings are things read but not importable as they are.
	Warnings []string
}

// Organization is a Postal organizations row.
type Organization struct {
	ID                              int64
	UUID, Name, Permalink, TimeZone string
	SuspensionReason                string
	CreatedAt, SuspendedAt          time.Time
}

// Server is a Postal servers row.
type Server struct {
	ID, OrganizationID, IPPoolID                  int64
	UUID, Name, Permalink, Mode, Token            string
	SendLimit                                     *int64
	MessageRetentionDays, RawMessageRetentionDays int
	RawMessageRetentionSize                       int
	SpamThreshold, SpamFailureThreshold           float64
	OutboundSpamThreshold                         *float64
	AllowSender, LogSMTPData, PrivacyMode         bool
	SuspensionReason                              string
	CreatedAt, SuspendedAt                        time.Time
}

// Domain is a Postal domains row; OwnerType is Server or Organization.
type Domain struct {
	ID, OwnerID                                          int64
	OwnerType                                            string
	UUID, Name, VerificationToken, VerificationMethod    string
	DKIMPrivateKey, DKIMIdentifierString                 string
	Outgoing, Incoming, UseForAny                        bool
	SPFStatus, SPFError, DKIMStatus, DKIMError           string
	MXStatus, MXError, ReturnPathStatus, ReturnPathError string
	CreatedAt, VerifiedAt, DNSCheckedAt                  time.Time
}

// Credential is a Postal credentials row (Key in clear, as Postal keeps it).
type Credential struct {
	ID, ServerID          int64
	UUID, Type, Name, Key string
	Hold                  bool
	CreatedAt, LastUsedAt time.Time
}

// HTTPEndpoint is a Postal http_endpoints row.
type HTTPEndpoint struct {
	ID, ServerID                      int64
	UUID, Name, URL, Encoding, Format string
	StripReplies, IncludeAttachments  bool
	Timeout                           int
	CreatedAt                         time.Time
}

// SMTPEndpoint is a Postal smtp_endpoints row.
type SMTPEndpoint struct {
	ID, ServerID                  int64
	UUID, Name, Hostname, SSLMode string
	Port                          int
	CreatedAt                     time.Time
}

// AddressEndpoint is a Postal address_endpoints row.
type AddressEndpoint struct {
	ID, ServerID  int64
	UUID, Address string
	CreatedAt     time.Time
}

// ExtraEndpoint is a Postal additional_route_endpoints row.
type ExtraEndpoint struct {
	ID, RouteID  int64
	EndpointType string
	EndpointID   int64
}

// Route is a Postal routes row.
type Route struct {
	ID, ServerID, DomainID, EndpointID              int64
	UUID, Name, Token, Mode, SpamMode, EndpointType string
	CreatedAt                                       time.Time
}

// Webhook is a Postal webhooks row with its events.
type Webhook struct {
	ID, ServerID             int64
	UUID, Name, URL          string
	AllEvents, Enabled, Sign bool
	Events                   []string
	CreatedAt                time.Time
}

// IPPool is a Postal ip_pools row.
type IPPool struct {
	ID         int64
	UUID, Name string
	Default    bool
	CreatedAt  time.Time
}

// IPAddress is a Postal ip_addresses row.
type IPAddress struct {
	ID, PoolID           int64
	IPv4, IPv6, Hostname string
	Priority             int
	CreatedAt            time.Time
}

// IPPoolRule is a Postal ip_pool_rules row; OwnerType is Server or
// Organization.
type IPPoolRule struct {
	ID, OwnerID, PoolID int64
	UUID, OwnerType     string
	From, To            []string
	CreatedAt           time.Time
}

// TrackDomain is a Postal track_domains row.
type TrackDomain struct {
	ID, ServerID, DomainID          int64
	UUID, Name, DNSStatus, DNSError string
	SSLEnabled, TrackClicks         bool
	TrackLoads                      bool
	ExcludedClickDomains            []string
	CreatedAt, DNSCheckedAt         time.Time
}

// Suppression is a row of a server's suppressions table.
type Suppression struct {
	Type, Address, Reason string
	Timestamp, KeepUntil  time.Time
}

// Read connects to Postal's databases and reads a Snapshot. It fails with
// an *UnreachableError when the main database does not answer and a
// *SchemaError when it is not shaped like Postal's; a missing message
// database only adds a warning (that server's suppressions are skipped).
func Read(ctx context.Context, src Source) (*Snapshot, error) {
	db, err := openDB(ctx, src.Main, src.MainDatabase)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := checkSchema(ctx, db, src.MainDatabase); err != nil {
		return nil, err
	}
	r := &reader{db: db, snap: &Snapshot{Suppressions: map[int64][]Suppression{}}}
	steps := []func(context.Context) error{
		r.organizations, r.servers, r.domains, r.credentials, r.endpoints, r.routes, r.webhooks,
		r.ipPools, r.ipPoolRules, r.trackDomains,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.suppressions(ctx, src); err != nil {
		return nil, err
	}
	return r.snap, nil
}

type reader struct {
	db   *sql.DB
	snap *Snapshot
	// live ids of organisations and servers (not soft-deleted).
	liveOrgs, liveServers map[int64]bool
}

// each runs q and calls scan for every row, capping the row count.
func (r *reader) each(ctx context.Context, what, q string, scan func(*sql.Rows) error) error {
	rows, err := r.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if n++; n > maxRows {
			return fmt.Errorf("read %s: more than %d rows", what, maxRows)
		}
		if err := scan(rows); err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

func tm(v sql.NullTime) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

func (r *reader) organizations(ctx context.Context) error {
	r.liveOrgs = map[int64]bool{}
	return r.each(ctx, "organizations", "SELECT id, uuid, name, permalink, time_zone, created_at, deleted_at, suspended_at, suspension_reason FROM organizations ORDER BY id",
		func(rows *sql.Rows) error {
			var (
				o                     Organization
				uuid, name, perm, tz  sql.NullString
				reason                sql.NullString
				created, deleted, sus sql.NullTime
			)
			if err := rows.Scan(&o.ID, &uuid, &name, &perm, &tz, &created, &deleted, &sus, &reason); err != nil {
				return err
			}
			if deleted.Valid {
				return nil
			}
			var err error
			if o.UUID, err = text("organizations", "uuid", o.ID, uuid, maxShort); err != nil {
				return err
			}
			if o.Name, err = text("organizations", "name", o.ID, name, maxShort); err != nil {
				return err
			}
			if o.Permalink, err = text("organizations", "permalink", o.ID, perm, maxShort); err != nil {
				return err
			}
			if o.TimeZone, err = text("organizations", "time_zone", o.ID, tz, maxShort); err != nil {
				return err
			}
			if o.SuspensionReason, err = text("organizations", "suspension_reason", o.ID, reason, maxShort); err != nil {
				return err
			}
			o.CreatedAt, o.SuspendedAt = tm(created), tm(sus)
			r.liveOrgs[o.ID] = true
			r.snap.Organizations = append(r.snap.Organizations, o)
			return nil
		})
}

func (r *reader) servers(ctx context.Context) error {
	r.liveServers = map[int64]bool{}
	return r.each(ctx, "servers", `SELECT id, organization_id, uuid, name, mode, ip_pool_id, created_at, permalink, send_limit,
		deleted_at, message_retention_days, raw_message_retention_days, raw_message_retention_size, allow_sender, token,
		spam_threshold, spam_failure_threshold, suspended_at, outbound_spam_threshold, suspension_reason, log_smtp_data,
		privacy_mode FROM servers ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				s                                   Server
				org, pool, limit                    sql.NullInt64
				uuid, name, mode, perm, tok, reason sql.NullString
				created, deleted, sus               sql.NullTime
				keepDays, rawDays, rawSize          sql.NullInt64
				allow, logData, privacy             sql.NullBool
				spam, spamFail, outbound            sql.NullFloat64
			)
			if err := rows.Scan(&s.ID, &org, &uuid, &name, &mode, &pool, &created, &perm, &limit, &deleted, &keepDays, &rawDays,
				&rawSize, &allow, &tok, &spam, &spamFail, &sus, &outbound, &reason, &logData, &privacy); err != nil {
				return err
			}
			if deleted.Valid || !r.liveOrgs[org.Int64] {
				return nil
			}
			s.OrganizationID, s.IPPoolID = org.Int64, pool.Int64
			fields := []struct {
				col string
				dst *string
				v   sql.NullString
			}{{"uuid", &s.UUID, uuid}, {"name", &s.Name, name}, {"mode", &s.Mode, mode}, {"permalink", &s.Permalink, perm},
				{"token", &s.Token, tok}, {"suspension_reason", &s.SuspensionReason, reason}}
			for _, f := range fields {
				v, err := text("servers", f.col, s.ID, f.v, maxShort)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			if limit.Valid && limit.Int64 > 0 {
				l := limit.Int64
				s.SendLimit = &l
			}
			s.MessageRetentionDays = intOr(keepDays, 60)
			s.RawMessageRetentionDays = intOr(rawDays, 30)
			s.RawMessageRetentionSize = intOr(rawSize, 2048)
			s.SpamThreshold, s.SpamFailureThreshold = floatOr(spam, 5), floatOr(spamFail, 20)
			if outbound.Valid {
				v := outbound.Float64
				s.OutboundSpamThreshold = &v
			}
			s.AllowSender, s.LogSMTPData, s.PrivacyMode = allow.Bool, logData.Bool, privacy.Bool
			s.CreatedAt, s.SuspendedAt = tm(created), tm(sus)
			r.liveServers[s.ID] = true
			r.snap.Servers = append(r.snap.Servers, s)
			return nil
		})
}

func intOr(v sql.NullInt64, def int) int {
	if !v.Valid {
		return def
	}
	return int(v.Int64)
}

func floatOr(v sql.NullFloat64, def float64) float64 {
	if !v.Valid {
		return def
	}
	return v.Float64
}

func (r *reader) domains(ctx context.Context) error {
	return r.each(ctx, "domains", `SELECT id, server_id, uuid, name, verification_token, verification_method, verified_at,
		dkim_private_key, created_at, dns_checked_at, spf_status, spf_error, dkim_status, dkim_error, mx_status, mx_error,
		return_path_status, return_path_error, outgoing, incoming, owner_type, owner_id, dkim_identifier_string, use_for_any
		FROM domains ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				d                             Domain
				serverID, ownerID             sql.NullInt64
				s                             [16]sql.NullString
				verified, created, checked    sql.NullTime
				outgoing, incoming, anySender sql.NullBool
			)
			// s: 0 uuid, 1 name, 2 token, 3 method, 4 key, 5 spf, 6 spf err, 7 dkim, 8 dkim err, 9 mx, 10 mx err,
			// 11 rp, 12 rp err, 13 owner type, 14 identifier string
			if err := rows.Scan(&d.ID, &serverID, &s[0], &s[1], &s[2], &s[3], &verified, &s[4], &created, &checked, &s[5], &s[6],
				&s[7], &s[8], &s[9], &s[10], &s[11], &s[12], &outgoing, &incoming, &s[13], &ownerID, &s[14], &anySender); err != nil {
				return err
			}
			d.OwnerType, d.OwnerID = s[13].String, ownerID.Int64
			if d.OwnerType == "" && serverID.Valid { // rows from before owners were polymorphic
				d.OwnerType, d.OwnerID = "Server", serverID.Int64
			}
			switch {
			case d.OwnerType == "Server" && !r.liveServers[d.OwnerID], d.OwnerType == "Organization" && !r.liveOrgs[d.OwnerID]:
				return nil
			case d.OwnerType != "Server" && d.OwnerType != "Organization":
				r.snap.Warnings = append(r.snap.Warnings, fmt.Sprintf("domain %d has owner type %q; skipped", d.ID, d.OwnerType))
				return nil
			}
			dst := []*string{&d.UUID, &d.Name, &d.VerificationToken, &d.VerificationMethod, &d.DKIMPrivateKey, &d.SPFStatus,
				&d.SPFError, &d.DKIMStatus, &d.DKIMError, &d.MXStatus, &d.MXError, &d.ReturnPathStatus, &d.ReturnPathError,
				nil, &d.DKIMIdentifierString}
			for i, p := range dst {
				if p == nil {
					continue
				}
				limit := maxShort
				if i == 4 {
					limit = maxText
				}
				v, err := text("domains", "column", d.ID, s[i], limit)
				if err != nil {
					return err
				}
				*p = v
			}
			d.Outgoing = !outgoing.Valid || outgoing.Bool
			d.Incoming = !incoming.Valid || incoming.Bool
			d.UseForAny = anySender.Bool
			d.CreatedAt, d.VerifiedAt, d.DNSCheckedAt = tm(created), tm(verified), tm(checked)
			r.snap.Domains = append(r.snap.Domains, d)
			return nil
		})
}

func (r *reader) credentials(ctx context.Context) error {
	return r.each(ctx, "credentials", "SELECT id, server_id, uuid, `key`, type, name, hold, last_used_at, created_at FROM credentials ORDER BY id",
		func(rows *sql.Rows) error {
			var (
				c                    Credential
				server               sql.NullInt64
				uuid, key, typ, name sql.NullString
				hold                 sql.NullBool
				used, created        sql.NullTime
			)
			if err := rows.Scan(&c.ID, &server, &uuid, &key, &typ, &name, &hold, &used, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			c.ServerID, c.Hold = server.Int64, hold.Bool
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&c.UUID, uuid}, {&c.Key, key}, {&c.Type, typ}, {&c.Name, name}} {
				v, err := text("credentials", "column", c.ID, f.v, maxShort)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			c.CreatedAt, c.LastUsedAt = tm(created), tm(used)
			r.snap.Credentials = append(r.snap.Credentials, c)
			return nil
		})
}

func (r *reader) endpoints(ctx context.Context) error {
	err := r.each(ctx, "http_endpoints", `SELECT id, server_id, uuid, name, url, encoding, format, strip_replies,
		include_attachments, timeout, created_at FROM http_endpoints ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				e                          HTTPEndpoint
				server, timeout            sql.NullInt64
				uuid, name, url, enc, fmt_ sql.NullString
				strip, attach              sql.NullBool
				created                    sql.NullTime
			)
			if err := rows.Scan(&e.ID, &server, &uuid, &name, &url, &enc, &fmt_, &strip, &attach, &timeout, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			e.ServerID = server.Int64
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&e.UUID, uuid}, {&e.Name, name}, {&e.URL, url}, {&e.Encoding, enc}, {&e.Format, fmt_}} {
				v, err := text("http_endpoints", "column", e.ID, f.v, maxShort*8)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			e.StripReplies, e.IncludeAttachments = strip.Bool, !attach.Valid || attach.Bool
			e.Timeout, e.CreatedAt = intOr(timeout, 5), tm(created)
			r.snap.HTTPEndpoints = append(r.snap.HTTPEndpoints, e)
			return nil
		})
	if err != nil {
		return err
	}
	err = r.each(ctx, "smtp_endpoints", `SELECT id, server_id, uuid, name, hostname, ssl_mode, port, created_at FROM smtp_endpoints ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				e                      SMTPEndpoint
				server, port           sql.NullInt64
				uuid, name, host, mode sql.NullString
				created                sql.NullTime
			)
			if err := rows.Scan(&e.ID, &server, &uuid, &name, &host, &mode, &port, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			e.ServerID = server.Int64
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&e.UUID, uuid}, {&e.Name, name}, {&e.Hostname, host}, {&e.SSLMode, mode}} {
				v, err := text("smtp_endpoints", "column", e.ID, f.v, maxShort)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			e.Port, e.CreatedAt = intOr(port, 25), tm(created)
			r.snap.SMTPEndpoints = append(r.snap.SMTPEndpoints, e)
			return nil
		})
	if err != nil {
		return err
	}
	return r.each(ctx, "address_endpoints", `SELECT id, server_id, uuid, address, created_at FROM address_endpoints ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				e             AddressEndpoint
				server        sql.NullInt64
				uuid, address sql.NullString
				created       sql.NullTime
			)
			if err := rows.Scan(&e.ID, &server, &uuid, &address, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			e.ServerID = server.Int64
			var err error
			if e.UUID, err = text("address_endpoints", "uuid", e.ID, uuid, maxShort); err != nil {
				return err
			}
			if e.Address, err = text("address_endpoints", "address", e.ID, address, maxShort); err != nil {
				return err
			}
			e.CreatedAt = tm(created)
			r.snap.AddrEndpoints = append(r.snap.AddrEndpoints, e)
			return nil
		})
}

func (r *reader) routes(ctx context.Context) error {
	err := r.each(ctx, "routes", `SELECT id, uuid, server_id, domain_id, endpoint_id, endpoint_type, name, spam_mode, token, mode,
		created_at FROM routes ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				rt                                   Route
				server, domain, endpoint             sql.NullInt64
				uuid, etype, name, spam, token, mode sql.NullString
				created                              sql.NullTime
			)
			if err := rows.Scan(&rt.ID, &uuid, &server, &domain, &endpoint, &etype, &name, &spam, &token, &mode, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			rt.ServerID, rt.DomainID, rt.EndpointID = server.Int64, domain.Int64, endpoint.Int64
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&rt.UUID, uuid}, {&rt.EndpointType, etype}, {&rt.Name, name}, {&rt.SpamMode, spam}, {&rt.Token, token}, {&rt.Mode, mode}} {
				v, err := text("routes", "column", rt.ID, f.v, maxShort)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			rt.CreatedAt = tm(created)
			r.snap.Routes = append(r.snap.Routes, rt)
			return nil
		})
	if err != nil {
		return err
	}
	return r.each(ctx, "additional_route_endpoints", `SELECT id, route_id, endpoint_type, endpoint_id
		FROM additional_route_endpoints ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				x           ExtraEndpoint
				route, epID sql.NullInt64
				etype       sql.NullString
			)
			if err := rows.Scan(&x.ID, &route, &etype, &epID); err != nil {
				return err
			}
			v, err := text("additional_route_endpoints", "endpoint_type", x.ID, etype, maxShort)
			if err != nil {
				return err
			}
			x.RouteID, x.EndpointType, x.EndpointID = route.Int64, v, epID.Int64
			r.snap.ExtraEndpoints = append(r.snap.ExtraEndpoints, x)
			return nil
		})
}

func (r *reader) webhooks(ctx context.Context) error {
	byID := map[int64]int{}
	err := r.each(ctx, "webhooks", `SELECT id, server_id, uuid, name, url, all_events, enabled, sign, created_at FROM webhooks ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				w                  Webhook
				server             sql.NullInt64
				uuid, name, url    sql.NullString
				all, enabled, sign sql.NullBool
				created            sql.NullTime
			)
			if err := rows.Scan(&w.ID, &server, &uuid, &name, &url, &all, &enabled, &sign, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			w.ServerID = server.Int64
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&w.UUID, uuid}, {&w.Name, name}, {&w.URL, url}} {
				v, err := text("webhooks", "column", w.ID, f.v, maxShort*8)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			w.AllEvents, w.Enabled, w.Sign = all.Bool, !enabled.Valid || enabled.Bool, !sign.Valid || sign.Bool
			w.CreatedAt = tm(created)
			byID[w.ID] = len(r.snap.Webhooks)
			r.snap.Webhooks = append(r.snap.Webhooks, w)
			return nil
		})
	if err != nil {
		return err
	}
	return r.each(ctx, "webhook_events", `SELECT id, webhook_id, event FROM webhook_events ORDER BY id`,
		func(rows *sql.Rows) error {
			var id int64
			var hook sql.NullInt64
			var event sql.NullString
			if err := rows.Scan(&id, &hook, &event); err != nil {
				return err
			}
			i, ok := byID[hook.Int64]
			if !ok {
				return nil
			}
			ev, err := text("webhook_events", "event", id, event, maxShort)
			if err != nil {
				return err
			}
			if ev != "" && len(r.snap.Webhooks[i].Events) < 100 {
				r.snap.Webhooks[i].Events = append(r.snap.Webhooks[i].Events, ev)
			}
			return nil
		})
}

func (r *reader) ipPools(ctx context.Context) error {
	err := r.each(ctx, "ip_pools", "SELECT id, uuid, name, `default`, created_at FROM ip_pools ORDER BY id",
		func(rows *sql.Rows) error {
			var (
				p          IPPool
				uuid, name sql.NullString
				def        sql.NullBool
				created    sql.NullTime
			)
			if err := rows.Scan(&p.ID, &uuid, &name, &def, &created); err != nil {
				return err
			}
			var err error
			if p.UUID, err = text("ip_pools", "uuid", p.ID, uuid, maxShort); err != nil {
				return err
			}
			if p.Name, err = text("ip_pools", "name", p.ID, name, maxShort); err != nil {
				return err
			}
			p.Default, p.CreatedAt = def.Bool, tm(created)
			r.snap.IPPools = append(r.snap.IPPools, p)
			return nil
		})
	if err != nil {
		return err
	}
	return r.each(ctx, "ip_addresses", `SELECT id, ip_pool_id, ipv4, ipv6, hostname, priority, created_at FROM ip_addresses ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				a                    IPAddress
				pool, prio           sql.NullInt64
				ipv4, ipv6, hostname sql.NullString
				created              sql.NullTime
			)
			if err := rows.Scan(&a.ID, &pool, &ipv4, &ipv6, &hostname, &prio, &created); err != nil {
				return err
			}
			a.PoolID = pool.Int64
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&a.IPv4, ipv4}, {&a.IPv6, ipv6}, {&a.Hostname, hostname}} {
				v, err := text("ip_addresses", "column", a.ID, f.v, maxShort)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			a.Priority, a.CreatedAt = intOr(prio, 100), tm(created)
			r.snap.IPAddresses = append(r.snap.IPAddresses, a)
			return nil
		})
}

func (r *reader) ipPoolRules(ctx context.Context) error {
	return r.each(ctx, "ip_pool_rules", `SELECT id, uuid, owner_type, owner_id, ip_pool_id, from_text, to_text, created_at
		FROM ip_pool_rules ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				ru                    IPPoolRule
				owner, pool           sql.NullInt64
				uuid, otype, from, to sql.NullString
				created               sql.NullTime
			)
			if err := rows.Scan(&ru.ID, &uuid, &otype, &owner, &pool, &from, &to, &created); err != nil {
				return err
			}
			ru.OwnerType, ru.OwnerID, ru.PoolID = otype.String, owner.Int64, pool.Int64
			if ru.OwnerType == "Server" && !r.liveServers[ru.OwnerID] || ru.OwnerType == "Organization" && !r.liveOrgs[ru.OwnerID] ||
				ru.OwnerType != "Server" && ru.OwnerType != "Organization" {
				return nil
			}
			var err error
			if ru.UUID, err = text("ip_pool_rules", "uuid", ru.ID, uuid, maxShort); err != nil {
				return err
			}
			f, err := text("ip_pool_rules", "from_text", ru.ID, from, maxText)
			if err != nil {
				return err
			}
			t, err := text("ip_pool_rules", "to_text", ru.ID, to, maxText)
			if err != nil {
				return err
			}
			ru.From, ru.To, ru.CreatedAt = lines(f), lines(t), tm(created)
			r.snap.IPPoolRules = append(r.snap.IPPoolRules, ru)
			return nil
		})
}

// lines splits newline-separated text into trimmed, non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (r *reader) trackDomains(ctx context.Context) error {
	return r.each(ctx, "track_domains", `SELECT id, uuid, server_id, domain_id, name, dns_checked_at, dns_status, dns_error,
		ssl_enabled, track_clicks, track_loads, excluded_click_domains, created_at FROM track_domains ORDER BY id`,
		func(rows *sql.Rows) error {
			var (
				d                                  TrackDomain
				server, domain                     sql.NullInt64
				uuid, name, status, derr, excluded sql.NullString
				checked, created                   sql.NullTime
				ssl, clicks, loads                 sql.NullBool
			)
			if err := rows.Scan(&d.ID, &uuid, &server, &domain, &name, &checked, &status, &derr, &ssl, &clicks, &loads,
				&excluded, &created); err != nil {
				return err
			}
			if !r.liveServers[server.Int64] {
				return nil
			}
			d.ServerID, d.DomainID = server.Int64, domain.Int64
			for _, f := range []struct {
				dst *string
				v   sql.NullString
			}{{&d.UUID, uuid}, {&d.Name, name}, {&d.DNSStatus, status}, {&d.DNSError, derr}} {
				v, err := text("track_domains", "column", d.ID, f.v, maxShort)
				if err != nil {
					return err
				}
				*f.dst = v
			}
			ex, err := text("track_domains", "excluded_click_domains", d.ID, excluded, maxText)
			if err != nil {
				return err
			}
			d.ExcludedClickDomains = lines(ex)
			d.SSLEnabled, d.TrackClicks, d.TrackLoads = !ssl.Valid || ssl.Bool, !clicks.Valid || clicks.Bool, !loads.Valid || loads.Bool
			d.CreatedAt, d.DNSCheckedAt = tm(created), tm(checked)
			r.snap.TrackDomains = append(r.snap.TrackDomains, d)
			return nil
		})
}

// suppressions reads each live server's suppression list from its message
// database. A database that does not exist (a server that never received
// mail) gives a warning, not a failure.
func (r *reader) suppressions(ctx context.Context, src Source) error {
	if len(r.snap.Servers) == 0 {
		return nil
	}
	db, err := openDB(ctx, src.Message, "")
	var unreachable *UnreachableError
	if errors.As(err, &unreachable) {
		unreachable.Database = src.MessagePrefix + "-server-* (message_db)"
	}
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range r.snap.Servers {
		name := fmt.Sprintf("%s-server-%d", src.MessagePrefix, s.ID)
		var exists int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'suppressions'`,
			name).Scan(&exists)
		if err != nil {
			return fmt.Errorf("look for message database %s: %w", name, err)
		}
		if exists == 0 {
			r.snap.Warnings = append(r.snap.Warnings, fmt.Sprintf("server %s: no message database %s with a suppressions table; its suppression list is not imported", s.Permalink, name))
			continue
		}
		q := "SELECT id, type, address, reason, timestamp, keep_until FROM `" + strings.ReplaceAll(name, "`", "``") + "`.suppressions ORDER BY id"
		var list []Suppression
		err = r.each(ctx, name+".suppressions", q, func(rows *sql.Rows) error {
			var (
				id                   int64
				typ, address, reason sql.NullString
				ts, keep             sql.NullFloat64
			)
			if err := rows.Scan(&id, &typ, &address, &reason, &ts, &keep); err != nil {
				return err
			}
			var sp Suppression
			var err error
			if sp.Type, err = text("suppressions", "type", id, typ, maxShort); err != nil {
				return err
			}
			if sp.Address, err = text("suppressions", "address", id, address, maxShort); err != nil {
				return err
			}
			if sp.Reason, err = text("suppressions", "reason", id, reason, maxShort*4); err != nil {
				return err
			}
			if sp.Address == "" {
				return nil
			}
			sp.Timestamp, sp.KeepUntil = unixFloat(ts), unixFloat(keep)
			list = append(list, sp)
			return nil
		})
		if err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) {
				return fmt.Errorf("message database %s: %w", name, err)
			}
			return err
		}
		r.snap.Suppressions[s.ID] = list
	}
	return nil
}

// unixFloat converts Postal's decimal Unix times (seconds with fractions).
func unixFloat(v sql.NullFloat64) time.Time {
	if !v.Valid || v.Float64 <= 0 {
		return time.Time{}
	}
	sec := int64(v.Float64)
	return time.Unix(sec, int64((v.Float64-float64(sec))*1e9)).UTC().Truncate(time.Microsecond)
}
