// Package config reads postal.yml: Postal's version-2 layout plus postal's own sections
// (database, redis, requeuer, cron and the additions to smtp_server, worker, smtp_client,
// dns and logging).
//
// Load guarantees that a *Config it returns has every key set (Postal's default where the
// file and the environment are silent), every `$config-file-root` expanded to the folder of
// the file, and every rule of the schema satisfied. When the file or the environment is
// wrong, Load returns a *Problems error listing every problem at once, each with the YAML
// key path (or environment variable) it concerns, so an operator fixes them in one pass.
//
// Values come from, in increasing precedence: the defaults (Defaults), the file, and the
// environment (POSTAL_<KEY> for the postal section, <SECTION>_<KEY> for the others, as
// Postal names them). Durations are numbers of seconds (type Seconds), as in Postal.
//
// The package imports no other package of the project.
package config

import (
	"math"
	"time"
)

// ConfigFileRoot is the placeholder that Load replaces, in every string value, with the
// absolute folder of the configuration file (matched case-insensitively, as Postal does).
const ConfigFileRoot = "$config-file-root"

// Seconds is a duration written as a number of seconds in postal.yml and in the
// environment (fractions allowed), as Postal writes its timeouts.
type Seconds float64

// Duration converts s to a time.Duration, rounding to the nearest nanosecond. Values
// beyond the range of time.Duration saturate at its minimum or maximum; NaN gives 0.
func (s Seconds) Duration() time.Duration {
	ns := float64(s) * float64(time.Second)
	switch {
	case math.IsNaN(ns):
		return 0
	case ns >= math.MaxInt64:
		return time.Duration(math.MaxInt64)
	case ns <= math.MinInt64:
		return time.Duration(math.MinInt64)
	}
	return time.Duration(math.Round(ns))
}

// Config is the whole of postal.yml. Field names follow the YAML keys in CamelCase; the
// yaml tags are the keys. Validate states the rules every field obeys after Load.
type Config struct {
	// Version is the layout version of the file; only 2 is supported.
	Version int `yaml:"version" validate:"eq=2"`
	// Postal holds installation-wide settings (section postal).
	Postal Postal `yaml:"postal"`
	// WebServer configures the web-server role (section web_server).
	WebServer WebServer `yaml:"web_server"`
	// Worker configures the worker role (section worker).
	Worker Worker `yaml:"worker"`
	// SMTPServer configures the smtp-server role (section smtp_server).
	SMTPServer SMTPServer `yaml:"smtp_server"`
	// DNS holds the names published to customers and the resolver settings (section dns).
	DNS DNS `yaml:"dns"`
	// SMTP is where postal sends its own notification mail (section smtp).
	SMTP SMTP `yaml:"smtp"`
	// SMTPClient configures outgoing SMTP connections (section smtp_client).
	SMTPClient SMTPClient `yaml:"smtp_client"`
	// Logging configures logs and error reporting (section logging).
	Logging Logging `yaml:"logging"`
	// GELF configures shipping logs to a GELF receiver (section gelf).
	GELF GELF `yaml:"gelf"`
	// Spamd configures SpamAssassin inspection (section spamd).
	Spamd Spamd `yaml:"spamd"`
	// ClamAV configures virus scanning (section clamav).
	ClamAV ClamAV `yaml:"clamav"`
	// Rspamd configures rspamd inspection (section rspamd).
	Rspamd Rspamd `yaml:"rspamd"`
	// MigrationWaiter makes processes wait for the schema to be current (section
	// migration_waiter).
	MigrationWaiter MigrationWaiter `yaml:"migration_waiter"`
	// Rails holds web-UI session settings kept for compatibility (section rails).
	Rails Rails `yaml:"rails"`
	// OIDC configures single sign-on for the web UI (section oidc).
	OIDC OIDC `yaml:"oidc"`
	// MainDB is Postal's MariaDB main database, read only by postalctl
	// import-postal (section main_db).
	MainDB MainDB `yaml:"main_db"`
	// MessageDB is where Postal keeps its per-server message databases, read
	// only by postalctl import-postal (section message_db).
	MessageDB MessageDB `yaml:"message_db"`
	// Database selects and configures the SQL database (section database; ours).
	Database Database `yaml:"database"`
	// Redis configures the Redis connection (section redis; ours).
	Redis Redis `yaml:"redis"`
	// Requeuer configures the requeuer role (section requeuer; ours).
	Requeuer Requeuer `yaml:"requeuer"`
	// Cron configures the cron role (section cron; ours).
	Cron Cron `yaml:"cron"`
	// Webhooks configures webhook delivery and its attempt log (section webhooks; ours).
	Webhooks Webhooks `yaml:"webhooks"`
	// Inspection says what spam and virus inspection does with large messages
	// and when a scanner is down (section inspection; ours).
	Inspection Inspection `yaml:"inspection"`

	// FilePath is the absolute path of the file the configuration came from, "" if none.
	FilePath string `yaml:"-"`
	// Warnings lists what Load accepted but an operator should know: keys Postal
	// ignores (with a did-you-mean), the legacy layout. Strict turns them into errors.
	Warnings []Problem `yaml:"-"`

	// postalDB is set when main_db or message_db came from the file or the
	// environment (see HasPostalDatabase).
	postalDB bool
}

// Postal is the postal section.
type Postal struct {
	// WebHostname is the host name of the web interface and API.
	WebHostname string `yaml:"web_hostname"`
	// WebProtocol is http or https.
	WebProtocol string `yaml:"web_protocol" validate:"oneof=http https"`
	// SMTPHostname is the host name of the SMTP server.
	SMTPHostname string `yaml:"smtp_hostname"`
	// UseIPPools enables IP pools.
	UseIPPools bool `yaml:"use_ip_pools"`
	// DefaultMaximumDeliveryAttempts is the number of attempts before a message hard-fails.
	DefaultMaximumDeliveryAttempts int `yaml:"default_maximum_delivery_attempts" validate:"gte=1"`
	// DefaultMaximumHoldExpiryDays is how long held messages are kept.
	DefaultMaximumHoldExpiryDays int `yaml:"default_maximum_hold_expiry_days" validate:"gte=0"`
	// DefaultSuppressionListAutomaticRemovalDays is how long an address stays suppressed.
	DefaultSuppressionListAutomaticRemovalDays int `yaml:"default_suppression_list_automatic_removal_days" validate:"gte=0"`
	// DefaultSpamThreshold is the default score at which a message is spam.
	DefaultSpamThreshold int `yaml:"default_spam_threshold"`
	// DefaultSpamFailureThreshold is the default score at which a spam message fails.
	DefaultSpamFailureThreshold int `yaml:"default_spam_failure_threshold"`
	// UseLocalNSForDomainVerification checks domains with the local resolver instead of
	// the domain's own name servers.
	UseLocalNSForDomainVerification bool `yaml:"use_local_ns_for_domain_verification"`
	// UseResentSenderHeader adds a Resent-Sender header to outgoing mail.
	UseResentSenderHeader bool `yaml:"use_resent_sender_header"`
	// SigningKeyPath is the RSA key used to sign webhooks.
	SigningKeyPath string `yaml:"signing_key_path"`
	// SMTPRelays are smtp://host[:port][?ssl_mode=None|Auto|TLS|STARTTLS] URLs; when set,
	// outgoing mail goes through them instead of MX lookup (see ParseSMTPRelay).
	SMTPRelays []string `yaml:"smtp_relays" validate:"dive,smtp_relay"`
	// TrustedProxies are IP addresses or CIDR ranges trusted to proxy web requests.
	TrustedProxies []string `yaml:"trusted_proxies" validate:"dive,ip_or_cidr"`
	// QueuedMessageLockStaleDays is kept for compatibility; postal never drops stale work.
	QueuedMessageLockStaleDays int `yaml:"queued_message_lock_stale_days" validate:"gte=1"`
	// BatchQueuedMessages lets a worker deliver other ready messages for the same domain.
	BatchQueuedMessages bool `yaml:"batch_queued_messages"`
}

// WebServer is the web_server section.
type WebServer struct {
	// DefaultPort is the HTTP port (PORT overrides it for a single-role process).
	DefaultPort int `yaml:"default_port" validate:"port"`
	// DefaultBindAddress is the IP to listen on (BIND_ADDRESS overrides it).
	DefaultBindAddress string `yaml:"default_bind_address" validate:"ip"`
	// MaxThreads bounds concurrent request handling.
	MaxThreads int `yaml:"max_threads" validate:"gte=1"`
	// APIMaxBodySize caps an HTTP API request body, in megabytes.
	APIMaxBodySize int `yaml:"api_max_body_size" validate:"gte=1"`
	// APIRateLimit is how many HTTP API requests one API credential may make
	// per APIRateLimitWindow, counted across every web-server through Redis;
	// 0 turns the limit off.
	APIRateLimit int `yaml:"api_rate_limit" validate:"gte=0"`
	// APIRateLimitWindow is the rate limit's sliding window.
	APIRateLimitWindow Seconds `yaml:"api_rate_limit_window" validate:"gt=0"`
}

// Worker is the worker section.
type Worker struct {
	// DefaultHealthServerPort is the port of the health server.
	DefaultHealthServerPort int `yaml:"default_health_server_port" validate:"port"`
	// DefaultHealthServerBindAddress is the IP of the health server.
	DefaultHealthServerBindAddress string `yaml:"default_health_server_bind_address" validate:"ip"`
	// Threads is the number of concurrent deliveries per worker process.
	Threads int `yaml:"threads" validate:"gte=1"`
	// VisibilityTimeout is how long a claimed entry stays invisible before another worker
	// may reclaim it (also the SQL lock expiry).
	VisibilityTimeout Seconds `yaml:"visibility_timeout" validate:"gt=0"`
	// MaxDeliveries is how many times an entry may be handed out before it is dead.
	MaxDeliveries int `yaml:"max_deliveries" validate:"gte=1"`
	// BatchSize is the most messages delivered together for one destination.
	BatchSize int `yaml:"batch_size" validate:"gte=1"`
	// DKIMOpenSSL signs DKIM through the system's libcrypto when it can be
	// loaded (about four times faster than Go's crypto/rsa, same signatures);
	// false always uses crypto/rsa.
	DKIMOpenSSL bool `yaml:"dkim_openssl"`
	// SuppressHardBounces adds the recipient of a received hard bounce
	// (docs/operations.md, "Bounces") to its server's suppression list.
	SuppressHardBounces bool `yaml:"suppress_hard_bounces"`
}

// SMTPServer is the smtp_server section.
type SMTPServer struct {
	// DefaultPort is the SMTP port (PORT overrides it for a single-role process).
	DefaultPort int `yaml:"default_port" validate:"port"`
	// DefaultBindAddress is the IP to listen on (BIND_ADDRESS overrides it).
	DefaultBindAddress string `yaml:"default_bind_address" validate:"ip"`
	// DefaultHealthServerPort is the port of the health server.
	DefaultHealthServerPort int `yaml:"default_health_server_port" validate:"port"`
	// DefaultHealthServerBindAddress is the IP of the health server.
	DefaultHealthServerBindAddress string `yaml:"default_health_server_bind_address" validate:"ip"`
	// TLSEnabled offers STARTTLS with the certificate below.
	TLSEnabled bool `yaml:"tls_enabled"`
	// TLSCertificatePath is the PEM certificate chain.
	TLSCertificatePath string `yaml:"tls_certificate_path" validate:"required_if=TLSEnabled true"`
	// TLSPrivateKeyPath is the PEM private key.
	TLSPrivateKeyPath string `yaml:"tls_private_key_path" validate:"required_if=TLSEnabled true"`
	// TLSCiphers overrides the cipher list (OpenSSL names).
	TLSCiphers string `yaml:"tls_ciphers"`
	// SSLVersion is Postal's SSL version setting, kept for compatibility.
	SSLVersion string `yaml:"ssl_version"`
	// ProxyProtocol expects a PROXY protocol header (v1 or v2) on each connection from a
	// network in ProxyProtocolTrusted; connections from anywhere else are refused.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// ProxyProtocolTrusted lists the IP addresses and CIDR ranges of the proxies whose PROXY
	// headers are believed (default loopback only). It must not be empty while
	// ProxyProtocol is on. postal.trusted_proxies (web requests) is not consulted.
	ProxyProtocolTrusted []string `yaml:"proxy_protocol_trusted" validate:"dive,ip_or_cidr"`
	// LogConnections logs each connection.
	LogConnections bool `yaml:"log_connections"`
	// MaxMessageSize is the largest accepted message in megabytes (see MaxMessageBytes).
	MaxMessageSize int `yaml:"max_message_size" validate:"gte=1"`
	// LogIPAddressExclusionMatcher is a regular expression (Go syntax) of client IPs whose
	// connections are not logged.
	LogIPAddressExclusionMatcher string `yaml:"log_ip_address_exclusion_matcher" validate:"omitempty,regexp"`
	// MaxRecipients is the most RCPT TO per message.
	MaxRecipients int `yaml:"max_recipients" validate:"gte=1"`
	// MaxConnections is the most concurrent connections.
	MaxConnections int `yaml:"max_connections" validate:"gte=1"`
	// MaxConnectionsPerIP is the most concurrent connections from one client: one IPv4
	// address or one IPv6 /64.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip" validate:"gte=1"`
	// MaxCommands is the most command lines one connection may send (every line read
	// outside message data: NOOP, VRFY, HELP, RSET and AUTH continuation lines included).
	MaxCommands int `yaml:"max_commands" validate:"gte=1"`
	// MaxBadCommands is the most rejected commands before the session is closed.
	MaxBadCommands int `yaml:"max_bad_commands" validate:"gte=1"`
	// IdleTimeout closes a session that sends nothing for this long.
	IdleTimeout Seconds `yaml:"idle_timeout" validate:"gt=0"`
	// DataTimeout bounds receiving one whole message body: DATA, or every BDAT chunk
	// and the commands between them.
	DataTimeout Seconds `yaml:"data_timeout" validate:"gt=0"`
	// AuthMaxFailures is the most failed AUTH attempts per client (IPv4 address or IPv6
	// /64) within the window.
	AuthMaxFailures int `yaml:"auth_max_failures" validate:"gte=1"`
	// AuthFailureWindow is the window over which AUTH failures are counted.
	AuthFailureWindow Seconds `yaml:"auth_failure_window" validate:"gt=0"`
	// MaxHeaderBytes bounds the header block of a message in bytes; DATA over it is
	// answered 552 5.3.4 as soon as the block passes it.
	MaxHeaderBytes int `yaml:"max_header_bytes" validate:"gte=1024"`
	// MaxHeaderLines bounds the header block in lines (fields plus continuation lines).
	MaxHeaderLines int `yaml:"max_header_lines" validate:"gte=10"`
	// MaxInFlightSize is the most message data, in megabytes, that the process holds in
	// memory for messages being received at once; past it DATA is answered 451 4.3.1.
	MaxInFlightSize int `yaml:"max_in_flight_size" validate:"gte=1"`
	// PostmasterAddress is an address served by a route (local@domain) that receives mail
	// sent to <postmaster> or postmaster@ this server's host names and domains, unless the
	// domain has a route of its own for postmaster. Empty refuses such mail with 550.
	PostmasterAddress string `yaml:"postmaster_address" validate:"omitempty,mailbox"`
}

// MaxInFlightBytes is MaxInFlightSize converted from megabytes (MiB) to bytes.
func (s SMTPServer) MaxInFlightBytes() int64 {
	return int64(s.MaxInFlightSize) * 1024 * 1024
}

// MaxMessageBytes is MaxMessageSize converted from megabytes (MiB, as Postal computes it)
// to bytes.
func (s SMTPServer) MaxMessageBytes() int64 {
	return int64(s.MaxMessageSize) * 1024 * 1024
}

// DNS is the dns section.
type DNS struct {
	// MXRecords are the MX host names customers point their domains at.
	MXRecords []string `yaml:"mx_records"`
	// SPFInclude is the name customers include in their SPF records.
	SPFInclude string `yaml:"spf_include"`
	// ReturnPathDomain is the return-path host name.
	ReturnPathDomain string `yaml:"return_path_domain"`
	// RouteDomain hosts route-specific addresses.
	RouteDomain string `yaml:"route_domain"`
	// TrackDomain is the CNAME target of tracking domains.
	TrackDomain string `yaml:"track_domain"`
	// HeloHostname is the HELO/EHLO name for outgoing connections ("" = smtp_hostname).
	HeloHostname string `yaml:"helo_hostname"`
	// DKIMIdentifier is the prefix of DKIM selectors.
	DKIMIdentifier string `yaml:"dkim_identifier" validate:"required"`
	// DomainVerifyPrefix prefixes the TXT verification record.
	DomainVerifyPrefix string `yaml:"domain_verify_prefix"`
	// CustomReturnPathPrefix is the label customers CNAME to the return-path domain.
	CustomReturnPathPrefix string `yaml:"custom_return_path_prefix"`
	// Timeout bounds one DNS query.
	Timeout Seconds `yaml:"timeout" validate:"gt=0"`
	// ResolvConfPath lists the local name servers when Nameservers is empty.
	ResolvConfPath string `yaml:"resolv_conf_path"`
	// Nameservers are host or host:port entries used instead of ResolvConfPath.
	Nameservers []string `yaml:"nameservers" validate:"dive,nameserver"`
}

// NameserverAddrs returns Nameservers as host:port strings, adding port 53 where no
// port is given. Entries are assumed valid (as after Load).
func (d DNS) NameserverAddrs() []string {
	out := make([]string, 0, len(d.Nameservers))
	for _, ns := range d.Nameservers {
		out = append(out, nameserverAddr(ns))
	}
	return out
}

// SMTP is the smtp section: the server postal sends its own notification mail through.
type SMTP struct {
	// Host is the server's host name.
	Host string `yaml:"host"`
	// Port is the server's port.
	Port int `yaml:"port" validate:"port"`
	// Username authenticates, with Password, when set.
	Username string `yaml:"username"`
	// Password is a secret (hidden by Redacted).
	Password string `yaml:"password"`
	// AuthenticationType is plain, login or cram_md5 ("" for none).
	AuthenticationType string `yaml:"authentication_type" validate:"omitempty,oneof=plain login cram_md5"`
	// EnableStartTLS requires STARTTLS.
	EnableStartTLS bool `yaml:"enable_starttls"`
	// EnableStartTLSAuto uses STARTTLS when offered.
	EnableStartTLSAuto bool `yaml:"enable_starttls_auto"`
	// OpenSSLVerifyMode is none or peer (or client_once, fail_if_no_peer_cert).
	OpenSSLVerifyMode string `yaml:"openssl_verify_mode" validate:"oneof=none peer client_once fail_if_no_peer_cert"`
	// FromName is the display name of notification mail.
	FromName string `yaml:"from_name"`
	// FromAddress is the sender address of notification mail.
	FromAddress string `yaml:"from_address"`
}

// SMTPClient is the smtp_client section.
type SMTPClient struct {
	// OpenTimeout bounds connecting to a remote server.
	OpenTimeout Seconds `yaml:"open_timeout" validate:"gt=0"`
	// ReadTimeout bounds waiting for each reply.
	ReadTimeout Seconds `yaml:"read_timeout" validate:"gt=0"`
	// DestinationPort is the port used for MX hosts.
	DestinationPort int `yaml:"destination_port" validate:"port"`
	// MaxConnectionsPerHost bounds concurrent connections to one destination host.
	MaxConnectionsPerHost int `yaml:"max_connections_per_host" validate:"gte=1"`
	// MaxMessagesPerConnection is how many messages one pooled connection carries.
	MaxMessagesPerConnection int `yaml:"max_messages_per_connection" validate:"gte=1"`
	// IdleConnectionTimeout closes a pooled connection unused for this long.
	IdleConnectionTimeout Seconds `yaml:"idle_connection_timeout" validate:"gt=0"`
}

// Logging is the logging section.
type Logging struct {
	// RailsLogEnabled is kept for compatibility; it has no effect.
	RailsLogEnabled bool `yaml:"rails_log_enabled"`
	// SentryDSN reports errors to Sentry when set (a secret; hidden by Redacted).
	SentryDSN string `yaml:"sentry_dsn"`
	// Enabled writes logs to standard output.
	Enabled bool `yaml:"enabled"`
	// HighlightingEnabled colours text logs.
	HighlightingEnabled bool `yaml:"highlighting_enabled"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level" validate:"oneof=debug info warn error"`
	// Format is auto (text on a terminal, JSON otherwise), text or json.
	Format string `yaml:"format" validate:"oneof=auto text json"`
}

// GELF is the gelf section.
type GELF struct {
	// Host receives GELF messages when set.
	Host string `yaml:"host"`
	// Port is the GELF port.
	Port int `yaml:"port" validate:"port"`
	// Facility names the source in each entry.
	Facility string `yaml:"facility"`
}

// Spamd is the spamd section.
type Spamd struct {
	// Enabled inspects messages with SpamAssassin.
	Enabled bool `yaml:"enabled"`
	// Host is the spamd host.
	Host string `yaml:"host" validate:"required_if=Enabled true"`
	// Port is the spamd port.
	Port int `yaml:"port" validate:"port"`
	// Timeout bounds one check (ours; Postal's is 15 s).
	Timeout Seconds `yaml:"timeout" validate:"gt=0"`
}

// ClamAV is the clamav section.
type ClamAV struct {
	// Enabled scans messages with ClamAV.
	Enabled bool `yaml:"enabled"`
	// Host is the clamd host.
	Host string `yaml:"host" validate:"required_if=Enabled true"`
	// Port is the clamd port.
	Port int `yaml:"port" validate:"port"`
	// Timeout bounds one scan (ours; Postal's is 10 s).
	Timeout Seconds `yaml:"timeout" validate:"gt=0"`
}

// Rspamd is the rspamd section.
type Rspamd struct {
	// Enabled inspects messages with rspamd.
	Enabled bool `yaml:"enabled"`
	// Host is the rspamd host.
	Host string `yaml:"host" validate:"required_if=Enabled true"`
	// Port is the rspamd port.
	Port int `yaml:"port" validate:"port"`
	// SSL connects with TLS.
	SSL bool `yaml:"ssl"`
	// Password is a secret (hidden by Redacted).
	Password string `yaml:"password"`
	// Flags are passed to rspamd.
	Flags string `yaml:"flags"`
	// Timeout bounds one check (ours; Postal's is 10 s).
	Timeout Seconds `yaml:"timeout" validate:"gt=0"`
}

// MigrationWaiter is the migration_waiter section.
type MigrationWaiter struct {
	// Enabled makes processes wait for the schema to be current before starting.
	Enabled bool `yaml:"enabled"`
	// Attempts is how many times to check.
	Attempts int `yaml:"attempts" validate:"gte=1"`
	// SleepTime is the pause between checks.
	SleepTime Seconds `yaml:"sleep_time" validate:"gt=0"`
}

// Rails is the rails section.
type Rails struct {
	// Environment is kept for compatibility.
	Environment string `yaml:"environment"`
	// SecretKey signs web sessions (a secret; hidden by Redacted).
	SecretKey string `yaml:"secret_key"`
}

// OIDC is the oidc section.
type OIDC struct {
	// Enabled turns on OpenID Connect sign-in.
	Enabled bool `yaml:"enabled"`
	// LocalAuthenticationEnabled keeps password sign-in available alongside OIDC.
	LocalAuthenticationEnabled bool `yaml:"local_authentication_enabled"`
	// Name is the provider's name shown on the sign-in page.
	Name string `yaml:"name"`
	// Issuer is the issuer URL.
	Issuer string `yaml:"issuer" validate:"required_if=Enabled true,omitempty,http_url"`
	// Identifier is the client ID.
	Identifier string `yaml:"identifier" validate:"required_if=Enabled true"`
	// Secret is the client secret (hidden by Redacted).
	Secret string `yaml:"secret"`
	// Scopes are requested from the provider.
	Scopes []string `yaml:"scopes"`
	// UIDField is the claim holding the user's unique id.
	UIDField string `yaml:"uid_field"`
	// EmailAddressField is the claim holding the e-mail address.
	EmailAddressField string `yaml:"email_address_field"`
	// NameField is the claim holding the user's name.
	NameField string `yaml:"name_field"`
	// Discovery reads the endpoints from the issuer's .well-known/openid-configuration.
	Discovery bool `yaml:"discovery"`
	// AuthorizationEndpoint is used when Discovery is false.
	AuthorizationEndpoint string `yaml:"authorization_endpoint" validate:"omitempty,http_url"`
	// TokenEndpoint is used when Discovery is false.
	TokenEndpoint string `yaml:"token_endpoint" validate:"omitempty,http_url"`
	// UserinfoEndpoint is used when Discovery is false.
	UserinfoEndpoint string `yaml:"userinfo_endpoint" validate:"omitempty,http_url"`
	// JWKSURI is used when Discovery is false.
	JWKSURI string `yaml:"jwks_uri" validate:"omitempty,http_url"`
}

// Database is the database section (ours; replaces Postal's main_db and message_db).
type Database struct {
	// Driver is sqlite or postgres.
	Driver string `yaml:"driver" validate:"oneof=sqlite postgres"`
	// Path is the SQLite file, used when Driver is sqlite.
	Path string `yaml:"path" validate:"required_if=Driver sqlite"`
	// URL is the PostgreSQL DSN, used when Driver is postgres (its password is hidden
	// by Redacted).
	URL string `yaml:"url" validate:"required_if=Driver postgres"`
	// MaxOpenConnections bounds the connection pool.
	MaxOpenConnections int `yaml:"max_open_connections" validate:"gte=1"`
}

// Redis is the redis section (ours).
type Redis struct {
	// URL is a redis://, rediss:// or unix:// URL, used when Addrs is empty.
	URL string `yaml:"url" validate:"required_without=Addrs,omitempty,redis_url"`
	// Addrs are host:port seeds for Sentinel (with MasterName) or Cluster; when set, URL
	// is not used.
	Addrs []string `yaml:"addrs" validate:"dive,host_port"`
	// MasterName selects Sentinel; it needs Addrs.
	MasterName string `yaml:"master_name" validate:"excluded_without=Addrs"`
	// Username authenticates with Password (ACL).
	Username string `yaml:"username"`
	// Password is a secret (hidden by Redacted).
	Password string `yaml:"password"`
	// DB is the database number (not used by Cluster).
	DB int `yaml:"db" validate:"gte=0"`
	// KeyPrefix starts every key, inside a hash tag: {<key_prefix>}:...
	KeyPrefix string `yaml:"key_prefix" validate:"key_prefix"`
	// PoolSize bounds the connection pool; 0 keeps the library default.
	PoolSize int `yaml:"pool_size" validate:"gte=0"`
}

// Requeuer is the requeuer section (ours).
type Requeuer struct {
	// Interval is how often due retries are moved to their streams.
	Interval Seconds `yaml:"interval" validate:"gt=0"`
	// ReconcileInterval is how often SQL is compared with Redis.
	ReconcileInterval Seconds `yaml:"reconcile_interval" validate:"gt=0"`
	// LockTTL is the lifetime of the requeuer lease.
	LockTTL Seconds `yaml:"lock_ttl" validate:"gt=0"`
}

// Cron is the cron section (ours).
type Cron struct {
	// LockTTL is the lifetime of the cron lease.
	LockTTL Seconds `yaml:"lock_ttl" validate:"gt=0"`
}

// Webhooks is the webhooks section (ours).
type Webhooks struct {
	// LogRetentionDays is how long the log of webhook attempts is kept
	// (Postal keeps 10 days).
	LogRetentionDays int `yaml:"log_retention_days" validate:"gte=1"`
	// MaxInFlight caps the webhook requests one worker process holds at once
	// (sending or waiting for a free connection to their receiver).
	MaxInFlight int `yaml:"max_in_flight" validate:"gte=1"`
	// PerDestination caps the concurrent requests to one receiver
	// (scheme://host:port), so one slow receiver cannot take every slot.
	PerDestination int `yaml:"per_destination" validate:"gte=1"`
}

// Inspection is the inspection section (ours): limits and the policy shared
// by the rspamd, spamd and clamav scanners.
type Inspection struct {
	// MaxMessageSize is the largest message scanned, in megabytes (MiB);
	// larger mail is delivered with X-Postal-Spam: unchecked and
	// X-Postal-Threat: unchecked. Keep it within clamd's StreamMaxLength.
	MaxMessageSize int `yaml:"max_message_size" validate:"gte=1"`
	// WhenUnavailable is what happens to a message a scanner could not check:
	// "retry" keeps it and tries again on the message schedule (its attempts
	// count); "accept" delivers it with X-Postal-Spam: unchecked and
	// X-Postal-Threat: unchecked.
	WhenUnavailable string `yaml:"when_unavailable" validate:"oneof=retry accept"`
}

// MaxMessageBytes is MaxMessageSize in bytes.
func (i Inspection) MaxMessageBytes() int { return i.MaxMessageSize * 1024 * 1024 }

// Defaults returns a configuration with every default filled in: Postal's for Postal's
// keys, ours for the rest. Path values keep the `$config-file-root` placeholder unexpanded
// (Load expands it); each call returns a new value that the caller may modify.
func Defaults() *Config {
	return &Config{
		Version: 2,
		Postal: Postal{
			WebHostname:                    "postal.example.com",
			WebProtocol:                    "https",
			SMTPHostname:                   "postal.example.com",
			DefaultMaximumDeliveryAttempts: 18,
			DefaultMaximumHoldExpiryDays:   7,
			DefaultSuppressionListAutomaticRemovalDays: 30,
			DefaultSpamThreshold:                       5,
			DefaultSpamFailureThreshold:                20,
			UseResentSenderHeader:                      true,
			SigningKeyPath:                             ConfigFileRoot + "/signing.key",
			QueuedMessageLockStaleDays:                 1,
			BatchQueuedMessages:                        true,
		},
		WebServer: WebServer{DefaultPort: 5000, DefaultBindAddress: "127.0.0.1", MaxThreads: 5,
			APIMaxBodySize: 32, APIRateLimit: 0, APIRateLimitWindow: 60},
		Worker: Worker{
			DefaultHealthServerPort:        9090,
			DefaultHealthServerBindAddress: "127.0.0.1",
			Threads:                        2,
			VisibilityTimeout:              300,
			MaxDeliveries:                  10,
			BatchSize:                      20,
			DKIMOpenSSL:                    true,
			SuppressHardBounces:            true,
		},
		SMTPServer: SMTPServer{
			DefaultPort:                    25,
			DefaultBindAddress:             "::",
			DefaultHealthServerPort:        9091,
			DefaultHealthServerBindAddress: "127.0.0.1",
			TLSCertificatePath:             ConfigFileRoot + "/smtp.cert",
			TLSPrivateKeyPath:              ConfigFileRoot + "/smtp.key",
			SSLVersion:                     "SSLv23",
			ProxyProtocolTrusted:           []string{"127.0.0.0/8", "::1/128"},
			MaxMessageSize:                 14,
			MaxRecipients:                  100,
			MaxConnections:                 1000,
			MaxConnectionsPerIP:            50,
			MaxCommands:                    10000,
			MaxBadCommands:                 10,
			IdleTimeout:                    300,
			DataTimeout:                    600,
			AuthMaxFailures:                5,
			AuthFailureWindow:              600,
			MaxHeaderBytes:                 1 << 20,
			MaxHeaderLines:                 10000,
			MaxInFlightSize:                256,
		},
		DNS: DNS{
			MXRecords:              []string{"mx1.postal.example.com", "mx2.postal.example.com"},
			SPFInclude:             "spf.postal.example.com",
			ReturnPathDomain:       "rp.postal.example.com",
			RouteDomain:            "routes.postal.example.com",
			TrackDomain:            "track.postal.example.com",
			DKIMIdentifier:         "postal",
			DomainVerifyPrefix:     "postal-verification",
			CustomReturnPathPrefix: "psrp",
			Timeout:                5,
			ResolvConfPath:         "/etc/resolv.conf",
		},
		SMTP: SMTP{
			Host:               "127.0.0.1",
			Port:               25,
			AuthenticationType: "login",
			EnableStartTLSAuto: true,
			OpenSSLVerifyMode:  "peer",
			FromName:           "Postal",
			FromAddress:        "postal@example.com",
		},
		SMTPClient: SMTPClient{
			OpenTimeout:              30,
			ReadTimeout:              30,
			DestinationPort:          25,
			MaxConnectionsPerHost:    20,
			MaxMessagesPerConnection: 100,
			IdleConnectionTimeout:    30,
		},
		Logging:         Logging{Enabled: true, Level: "info", Format: "auto"},
		GELF:            GELF{Port: 12201, Facility: "postal"},
		Spamd:           Spamd{Host: "127.0.0.1", Port: 783, Timeout: 15},
		ClamAV:          ClamAV{Host: "127.0.0.1", Port: 2000, Timeout: 10},
		Rspamd:          Rspamd{Host: "127.0.0.1", Port: 11334, Timeout: 10},
		MigrationWaiter: MigrationWaiter{Attempts: 120, SleepTime: 2},
		Rails:           Rails{Environment: "production"},
		OIDC: OIDC{
			LocalAuthenticationEnabled: true,
			Name:                       "OIDC Provider",
			Scopes:                     []string{"openid", "email"},
			UIDField:                   "sub",
			EmailAddressField:          "email",
			NameField:                  "name",
			Discovery:                  true,
		},
		MainDB: MainDB{Host: "localhost", Port: 3306, Username: "postal", Database: "postal", PoolSize: 5, Encoding: "utf8mb4"},
		MessageDB: MessageDB{Host: "localhost", Port: 3306, Username: "postal", Encoding: "utf8mb4",
			DatabaseNamePrefix: "postal"},
		Database: Database{
			Driver:             "sqlite",
			Path:               ConfigFileRoot + "/postal.sqlite",
			MaxOpenConnections: 20,
		},
		Redis:      Redis{URL: "redis://127.0.0.1:6379/0", KeyPrefix: "postal"},
		Requeuer:   Requeuer{Interval: 1, ReconcileInterval: 15, LockTTL: 15},
		Cron:       Cron{LockTTL: 15},
		Webhooks:   Webhooks{LogRetentionDays: 10, MaxInFlight: 64, PerDestination: 8},
		Inspection: Inspection{MaxMessageSize: 25, WhenUnavailable: "retry"},
	}
}
