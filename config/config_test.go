package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func noEnv(string) (string, bool) { return "", false }

// writeConfig writes content to postal.yml in a new temporary folder and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "postal.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string, lookup func(string) (string, bool)) *Config {
	t.Helper()
	c, err := Load(path, lookup)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

func TestDefaultsMatchPostal(t *testing.T) {
	d := Defaults()
	tests := []struct {
		key       string
		got, want any
	}{
		{"version", d.Version, 2},
		{"postal.web_hostname", d.Postal.WebHostname, "postal.example.com"},
		{"postal.web_protocol", d.Postal.WebProtocol, "https"},
		{"postal.smtp_hostname", d.Postal.SMTPHostname, "postal.example.com"},
		{"postal.use_ip_pools", d.Postal.UseIPPools, false},
		{"postal.default_maximum_delivery_attempts", d.Postal.DefaultMaximumDeliveryAttempts, 18},
		{"postal.default_maximum_hold_expiry_days", d.Postal.DefaultMaximumHoldExpiryDays, 7},
		{"postal.default_suppression_list_automatic_removal_days", d.Postal.DefaultSuppressionListAutomaticRemovalDays, 30},
		{"postal.default_spam_threshold", d.Postal.DefaultSpamThreshold, 5},
		{"postal.default_spam_failure_threshold", d.Postal.DefaultSpamFailureThreshold, 20},
		{"postal.use_local_ns_for_domain_verification", d.Postal.UseLocalNSForDomainVerification, false},
		{"postal.use_resent_sender_header", d.Postal.UseResentSenderHeader, true},
		{"postal.signing_key_path", d.Postal.SigningKeyPath, "$config-file-root/signing.key"},
		{"postal.smtp_relays", d.Postal.SMTPRelays, []string(nil)},
		{"postal.trusted_proxies", d.Postal.TrustedProxies, []string(nil)},
		{"postal.queued_message_lock_stale_days", d.Postal.QueuedMessageLockStaleDays, 1},
		{"postal.batch_queued_messages", d.Postal.BatchQueuedMessages, true},
		{"web_server.default_port", d.WebServer.DefaultPort, 5000},
		{"web_server.default_bind_address", d.WebServer.DefaultBindAddress, "127.0.0.1"},
		{"web_server.max_threads", d.WebServer.MaxThreads, 5},
		{"worker.default_health_server_port", d.Worker.DefaultHealthServerPort, 9090},
		{"worker.default_health_server_bind_address", d.Worker.DefaultHealthServerBindAddress, "127.0.0.1"},
		{"worker.threads", d.Worker.Threads, 2},
		{"smtp_server.default_port", d.SMTPServer.DefaultPort, 25},
		{"smtp_server.default_bind_address", d.SMTPServer.DefaultBindAddress, "::"},
		{"smtp_server.default_health_server_port", d.SMTPServer.DefaultHealthServerPort, 9091},
		{"smtp_server.default_health_server_bind_address", d.SMTPServer.DefaultHealthServerBindAddress, "127.0.0.1"},
		{"smtp_server.tls_enabled", d.SMTPServer.TLSEnabled, false},
		{"smtp_server.tls_certificate_path", d.SMTPServer.TLSCertificatePath, "$config-file-root/smtp.cert"},
		{"smtp_server.tls_private_key_path", d.SMTPServer.TLSPrivateKeyPath, "$config-file-root/smtp.key"},
		{"smtp_server.ssl_version", d.SMTPServer.SSLVersion, "SSLv23"},
		{"smtp_server.proxy_protocol", d.SMTPServer.ProxyProtocol, false},
		{"smtp_server.proxy_protocol_trusted", d.SMTPServer.ProxyProtocolTrusted, []string{"127.0.0.0/8", "::1/128"}},
		{"smtp_server.log_connections", d.SMTPServer.LogConnections, false},
		{"smtp_server.max_message_size", d.SMTPServer.MaxMessageSize, 14},
		{"dns.mx_records", d.DNS.MXRecords, []string{"mx1.postal.example.com", "mx2.postal.example.com"}},
		{"dns.spf_include", d.DNS.SPFInclude, "spf.postal.example.com"},
		{"dns.return_path_domain", d.DNS.ReturnPathDomain, "rp.postal.example.com"},
		{"dns.route_domain", d.DNS.RouteDomain, "routes.postal.example.com"},
		{"dns.track_domain", d.DNS.TrackDomain, "track.postal.example.com"},
		{"dns.helo_hostname", d.DNS.HeloHostname, ""},
		{"dns.dkim_identifier", d.DNS.DKIMIdentifier, "postal"},
		{"dns.domain_verify_prefix", d.DNS.DomainVerifyPrefix, "postal-verification"},
		{"dns.custom_return_path_prefix", d.DNS.CustomReturnPathPrefix, "psrp"},
		{"dns.timeout", d.DNS.Timeout, Seconds(5)},
		{"dns.resolv_conf_path", d.DNS.ResolvConfPath, "/etc/resolv.conf"},
		{"smtp.host", d.SMTP.Host, "127.0.0.1"},
		{"smtp.port", d.SMTP.Port, 25},
		{"smtp.authentication_type", d.SMTP.AuthenticationType, "login"},
		{"smtp.enable_starttls", d.SMTP.EnableStartTLS, false},
		{"smtp.enable_starttls_auto", d.SMTP.EnableStartTLSAuto, true},
		{"smtp.openssl_verify_mode", d.SMTP.OpenSSLVerifyMode, "peer"},
		{"smtp.from_name", d.SMTP.FromName, "Postal"},
		{"smtp.from_address", d.SMTP.FromAddress, "postal@example.com"},
		{"smtp_client.open_timeout", d.SMTPClient.OpenTimeout, Seconds(30)},
		{"smtp_client.read_timeout", d.SMTPClient.ReadTimeout, Seconds(30)},
		{"logging.rails_log_enabled", d.Logging.RailsLogEnabled, false},
		{"logging.enabled", d.Logging.Enabled, true},
		{"logging.highlighting_enabled", d.Logging.HighlightingEnabled, false},
		{"logging.sentry_dsn", d.Logging.SentryDSN, ""},
		{"gelf.port", d.GELF.Port, 12201},
		{"gelf.facility", d.GELF.Facility, "postal"},
		{"spamd.enabled", d.Spamd.Enabled, false},
		{"spamd.port", d.Spamd.Port, 783},
		{"clamav.enabled", d.ClamAV.Enabled, false},
		{"clamav.port", d.ClamAV.Port, 2000},
		{"rspamd.enabled", d.Rspamd.Enabled, false},
		{"rspamd.port", d.Rspamd.Port, 11334},
		{"rspamd.ssl", d.Rspamd.SSL, false},
		{"migration_waiter.enabled", d.MigrationWaiter.Enabled, false},
		{"migration_waiter.attempts", d.MigrationWaiter.Attempts, 120},
		{"migration_waiter.sleep_time", d.MigrationWaiter.SleepTime, Seconds(2)},
		{"rails.environment", d.Rails.Environment, "production"},
		{"rails.secret_key", d.Rails.SecretKey, ""},
		{"oidc.enabled", d.OIDC.Enabled, false},
		{"oidc.local_authentication_enabled", d.OIDC.LocalAuthenticationEnabled, true},
		{"oidc.name", d.OIDC.Name, "OIDC Provider"},
		{"oidc.scopes", d.OIDC.Scopes, []string{"openid", "email"}},
		{"oidc.uid_field", d.OIDC.UIDField, "sub"},
		{"oidc.email_address_field", d.OIDC.EmailAddressField, "email"},
		{"oidc.name_field", d.OIDC.NameField, "name"},
		{"oidc.discovery", d.OIDC.Discovery, true},
		// Ours.
		{"database.driver", d.Database.Driver, "sqlite"},
		{"database.path", d.Database.Path, "$config-file-root/postal.sqlite"},
		{"database.url", d.Database.URL, ""},
		{"database.max_open_connections", d.Database.MaxOpenConnections, 20},
		{"redis.url", d.Redis.URL, "redis://127.0.0.1:6379/0"},
		{"redis.addrs", d.Redis.Addrs, []string(nil)},
		{"redis.master_name", d.Redis.MasterName, ""},
		{"redis.db", d.Redis.DB, 0},
		{"redis.key_prefix", d.Redis.KeyPrefix, "postal"},
		{"redis.pool_size", d.Redis.PoolSize, 0},
		{"smtp_server.max_recipients", d.SMTPServer.MaxRecipients, 100},
		{"smtp_server.max_connections", d.SMTPServer.MaxConnections, 1000},
		{"smtp_server.max_connections_per_ip", d.SMTPServer.MaxConnectionsPerIP, 50},
		{"smtp_server.max_commands", d.SMTPServer.MaxCommands, 10000},
		{"smtp_server.max_bad_commands", d.SMTPServer.MaxBadCommands, 10},
		{"smtp_server.idle_timeout", d.SMTPServer.IdleTimeout, Seconds(300)},
		{"smtp_server.data_timeout", d.SMTPServer.DataTimeout, Seconds(600)},
		{"smtp_server.auth_max_failures", d.SMTPServer.AuthMaxFailures, 5},
		{"smtp_server.auth_failure_window", d.SMTPServer.AuthFailureWindow, Seconds(600)},
		{"web_server.api_max_body_size", d.WebServer.APIMaxBodySize, 32},
		{"web_server.api_rate_limit", d.WebServer.APIRateLimit, 0},
		{"web_server.api_rate_limit_window", d.WebServer.APIRateLimitWindow, Seconds(60)},
		{"worker.visibility_timeout", d.Worker.VisibilityTimeout, Seconds(300)},
		{"worker.max_deliveries", d.Worker.MaxDeliveries, 10},
		{"worker.batch_size", d.Worker.BatchSize, 20},
		{"worker.dkim_openssl", d.Worker.DKIMOpenSSL, true},
		{"worker.suppress_hard_bounces", d.Worker.SuppressHardBounces, true},
		{"smtp_client.destination_port", d.SMTPClient.DestinationPort, 25},
		{"smtp_client.max_connections_per_host", d.SMTPClient.MaxConnectionsPerHost, 20},
		{"smtp_client.max_messages_per_connection", d.SMTPClient.MaxMessagesPerConnection, 100},
		{"smtp_client.idle_connection_timeout", d.SMTPClient.IdleConnectionTimeout, Seconds(30)},
		{"dns.nameservers", d.DNS.Nameservers, []string(nil)},
		{"requeuer.interval", d.Requeuer.Interval, Seconds(1)},
		{"requeuer.reconcile_interval", d.Requeuer.ReconcileInterval, Seconds(15)},
		{"requeuer.lock_ttl", d.Requeuer.LockTTL, Seconds(15)},
		{"cron.lock_ttl", d.Cron.LockTTL, Seconds(15)},
		{"webhooks.log_retention_days", d.Webhooks.LogRetentionDays, 10},
		{"webhooks.max_in_flight", d.Webhooks.MaxInFlight, 64},
		{"webhooks.per_destination", d.Webhooks.PerDestination, 8},
		{"rspamd.timeout", d.Rspamd.Timeout, Seconds(10)},
		{"spamd.timeout", d.Spamd.Timeout, Seconds(15)},
		{"clamav.timeout", d.ClamAV.Timeout, Seconds(10)},
		{"inspection.max_message_size", d.Inspection.MaxMessageSize, 25},
		{"inspection.when_unavailable", d.Inspection.WhenUnavailable, "retry"},
		{"logging.level", d.Logging.Level, "info"},
		{"logging.format", d.Logging.Format, "auto"},
	}
	keys := Keys()
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if !slices.Contains(keys, tt.key) {
				t.Errorf("Keys() lacks %s", tt.key)
			}
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("default %s = %#v, want %#v", tt.key, tt.got, tt.want)
			}
		})
	}
}

func TestDefaultsReturnsIndependentValues(t *testing.T) {
	a := Defaults()
	a.DNS.MXRecords[0] = "changed"
	a.OIDC.Scopes[0] = "changed"
	b := Defaults()
	if b.DNS.MXRecords[0] != "mx1.postal.example.com" || b.OIDC.Scopes[0] != "openid" {
		t.Fatalf("Defaults shares list storage between calls: %v %v", b.DNS.MXRecords, b.OIDC.Scopes)
	}
}

func TestKeysAreUniqueAndCoverEverySection(t *testing.T) {
	keys := Keys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("duplicate key %s", k)
		}
		seen[k] = true
	}
	for _, s := range sectionNames() {
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, s+".") }) {
			t.Errorf("no key in section %s", s)
		}
	}
	if len(sectionNames()) != 23 {
		t.Errorf("sections = %v, want the 23 of the schema", sectionNames())
	}
}

func TestEmptyPathLoadsDefaultsRootedInWorkingDirectory(t *testing.T) {
	c := mustLoad(t, "", nil)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if c.FilePath != "" {
		t.Errorf("FilePath = %q, want empty", c.FilePath)
	}
	if want := wd + "/signing.key"; c.Postal.SigningKeyPath != want {
		t.Errorf("signing_key_path = %q, want %q", c.Postal.SigningKeyPath, want)
	}
	want := Defaults()
	want.Postal.SigningKeyPath = c.Postal.SigningKeyPath
	want.SMTPServer.TLSCertificatePath = wd + "/smtp.cert"
	want.SMTPServer.TLSPrivateKeyPath = wd + "/smtp.key"
	want.Database.Path = wd + "/postal.sqlite"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(\"\") differs from Defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestEmptyFileAndNullsKeepDefaults(t *testing.T) {
	tests := []struct{ name, content string }{
		{"empty file", ""},
		{"only comments", "# nothing here\n"},
		{"null document", "~\n"},
		{"null section", "version: 2\nweb_server:\n"},
		{"null values", "version: 2\nweb_server:\n  default_port:\n  default_bind_address: ~\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, writeConfig(t, tt.content), noEnv)
			if c.WebServer.DefaultPort != 5000 || c.WebServer.DefaultBindAddress != "127.0.0.1" {
				t.Errorf("web_server = %+v, want defaults", c.WebServer)
			}
		})
	}
}

func TestLoadReadsEveryValueType(t *testing.T) {
	path := writeConfig(t, `version: 2
postal:
  web_hostname: mail.example.org
  use_ip_pools: yes
  smtp_relays:
    - smtp://relay.example.org:2525?ssl_mode=STARTTLS
smtp_server:
  default_port: "2525"
  max_message_size: 25
  idle_timeout: 2.5
  tls_enabled: true
dns:
  nameservers: [1.1.1.1, "[::1]:5353"]
database:
  driver: postgres
  url: postgres://postal@127.0.0.1/postal
`)
	c := mustLoad(t, path, noEnv)
	tests := []struct {
		name      string
		got, want any
	}{
		{"string", c.Postal.WebHostname, "mail.example.org"},
		{"bool yes", c.Postal.UseIPPools, true},
		{"bool true", c.SMTPServer.TLSEnabled, true},
		{"quoted number", c.SMTPServer.DefaultPort, 2525},
		{"int", c.SMTPServer.MaxMessageSize, 25},
		{"fractional seconds", c.SMTPServer.IdleTimeout.Duration(), 2500 * time.Millisecond},
		{"list", c.Postal.SMTPRelays, []string{"smtp://relay.example.org:2525?ssl_mode=STARTTLS"}},
		{"flow list", c.DNS.Nameservers, []string{"1.1.1.1", "[::1]:5353"}},
		{"untouched default", c.SMTPServer.DataTimeout, Seconds(600)},
		{"file path", c.FilePath, path},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func TestLoadAppliesAnchorsAndMergeKeys(t *testing.T) {
	c := mustLoad(t, writeConfig(t, `version: 2
worker: &health
  default_health_server_bind_address: 0.0.0.0
  default_health_server_port: 9100
smtp_server:
  <<: *health
  default_health_server_port: 9101
dns:
  mx_records: &mx [mx.example.org]
  nameservers: *mx
`), noEnv)
	tests := []struct {
		name      string
		got, want any
	}{
		{"anchored section", c.Worker.DefaultHealthServerPort, 9100},
		{"merged key", c.SMTPServer.DefaultHealthServerBindAddress, "0.0.0.0"},
		{"explicit key beats merged", c.SMTPServer.DefaultHealthServerPort, 9101},
		{"aliased list", c.DNS.Nameservers, []string{"mx.example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func TestConfigFileRootIsExpandedEverywhere(t *testing.T) {
	path := writeConfig(t, `version: 2
postal:
  signing_key_path: $CONFIG-FILE-ROOT/keys/signing.key
dns:
  mx_records: [$config-file-root]
`)
	dir := filepath.Dir(path)
	c := mustLoad(t, path, mapEnv(map[string]string{"SMTP_SERVER_TLS_CERTIFICATE_PATH": "$config-file-root/env.cert"}))
	tests := []struct {
		name      string
		got, want any
	}{
		{"from file, any case", c.Postal.SigningKeyPath, dir + "/keys/signing.key"},
		{"list item", c.DNS.MXRecords, []string{dir}},
		{"from environment", c.SMTPServer.TLSCertificatePath, dir + "/env.cert"},
		{"default", c.SMTPServer.TLSPrivateKeyPath, dir + "/smtp.key"},
		{"default database", c.Database.Path, dir + "/postal.sqlite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func TestRelativePathIsMadeAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("postal.yml", []byte("version: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, "postal.yml", noEnv)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	gotDir, err := filepath.EvalSymlinks(filepath.Dir(c.FilePath))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.FilePath) || gotDir != real {
		t.Errorf("FilePath = %q, want an absolute path in %s", c.FilePath, dir)
	}
	if !strings.HasPrefix(c.Postal.SigningKeyPath, filepath.Dir(c.FilePath)+"/") {
		t.Errorf("signing_key_path = %q, want it under %s", c.Postal.SigningKeyPath, filepath.Dir(c.FilePath))
	}
}

func TestLoadMissingFileIsAnIOErrorNotProblems(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yml"), noEnv)
	var probs *Problems
	if err == nil || errors.As(err, &probs) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(absent) = %v; want a wrapped os.ErrNotExist", err)
	}
}

func TestDefaultsRoundTripThroughYAML(t *testing.T) {
	want := mustLoad(t, "", nil)
	want.Postal.SMTPRelays = []string{"smtp://relay.example.org:25"}
	want.DNS.Nameservers = []string{"127.0.0.1:53"}
	want.SMTPServer.IdleTimeout = 0.25
	data, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, string(data))
	got := mustLoad(t, path, noEnv)
	want.FilePath = got.FilePath
	want.postalDB = true // the marshalled file carries main_db and message_db
	if !reflect.DeepEqual(got, want) {
		t.Errorf("marshalled config does not load back the same:\n%s", data)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v", err)
	}
	c.WebServer.DefaultPort = 0
	c.Worker.Threads = 0
	c.Database.Driver = "postgres"
	err := c.Validate()
	var probs *Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Validate = %v, want *Problems", err)
	}
	want := []Problem{
		{"database.url", "required when database.driver is postgres"},
		{"web_server.default_port", "0 is not a port (1-65535)"},
		{"worker.threads", "0 must be at least 1"},
	}
	if !reflect.DeepEqual(probs.List, want) {
		t.Errorf("problems = %#v, want %#v", probs.List, want)
	}
}

func TestProblemsErrorIsSortedWithoutReordering(t *testing.T) {
	p := &Problems{List: []Problem{{"web_server.default_port", "b"}, {"dns.timeout", "a"}, {"dns.timeout", "0"}}}
	want := "dns.timeout: 0\ndns.timeout: a\nweb_server.default_port: b"
	if got := p.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if p.List[0].Path != "web_server.default_port" {
		t.Errorf("Error() reordered List")
	}
}

func TestSecondsDuration(t *testing.T) {
	tests := []struct {
		in   Seconds
		want time.Duration
	}{
		{0, 0},
		{1, time.Second},
		{0.25, 250 * time.Millisecond},
		{300, 5 * time.Minute},
		{-2, -2 * time.Second},
		{Seconds(math.Inf(1)), time.Duration(math.MaxInt64)},
		{Seconds(math.Inf(-1)), time.Duration(math.MinInt64)},
		{Seconds(math.NaN()), 0},
	}
	for _, tt := range tests {
		if got := tt.in.Duration(); got != tt.want {
			t.Errorf("Seconds(%v).Duration() = %v, want %v", float64(tt.in), got, tt.want)
		}
	}
}

func TestMaxMessageBytesConvertsMegabytes(t *testing.T) {
	tests := []struct {
		mb   int
		want int64
	}{{14, 14 << 20}, {1, 1 << 20}, {4096, 4096 << 20}}
	for _, tt := range tests {
		if got := (SMTPServer{MaxMessageSize: tt.mb}).MaxMessageBytes(); got != tt.want {
			t.Errorf("MaxMessageBytes(%d MB) = %d, want %d", tt.mb, got, tt.want)
		}
	}
}

func TestSMTPInputLimitDefaults(t *testing.T) {
	c := Defaults().SMTPServer
	if c.MaxHeaderBytes != 1<<20 || c.MaxHeaderLines != 10000 || c.MaxInFlightBytes() != 256<<20 || c.PostmasterAddress != "" {
		t.Errorf("defaults: header %d bytes %d lines, in flight %d, postmaster %q", c.MaxHeaderBytes, c.MaxHeaderLines,
			c.MaxInFlightBytes(), c.PostmasterAddress)
	}
}

func TestParseSMTPRelay(t *testing.T) {
	tests := []struct {
		in      string
		want    SMTPRelay
		wantErr string
	}{
		{"smtp://relay.example.com", SMTPRelay{"relay.example.com", 25, "Auto"}, ""},
		{"smtp://relay.example.com:2525?ssl_mode=TLS", SMTPRelay{"relay.example.com", 2525, "TLS"}, ""},
		{"smtp://[2001:db8::1]:587?ssl_mode=STARTTLS", SMTPRelay{"2001:db8::1", 587, "STARTTLS"}, ""},
		{"smtp://10.0.0.1:25?ssl_mode=None", SMTPRelay{"10.0.0.1", 25, "None"}, ""},
		{"smtp://x:25?ssl_mode=tls", SMTPRelay{}, "ssl_mode must be one of None, Auto, TLS, STARTTLS"},
		{"smtp://x:25?mode=TLS", SMTPRelay{}, "unknown parameter mode"},
		{"smtp://x:", SMTPRelay{}, "port must be 1-65535"},
		{"smtp://x/path", SMTPRelay{}, "a path is not allowed"},
		{"smtps://x", SMTPRelay{}, "is not an smtp:// URL"},
		{"relay.example.com:25", SMTPRelay{}, "is not an smtp:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSMTPRelay(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSMTPRelay = %+v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSMTPRelay = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestNameserverAddrsAddPort53(t *testing.T) {
	d := DNS{Nameservers: []string{"1.1.1.1", "::1", "ns.example.com", "8.8.8.8:5353", "[::1]:54"}}
	want := []string{"1.1.1.1:53", "[::1]:53", "ns.example.com:53", "8.8.8.8:5353", "[::1]:54"}
	if got := d.NameserverAddrs(); !reflect.DeepEqual(got, want) {
		t.Errorf("NameserverAddrs = %v, want %v", got, want)
	}
}

func TestSuggestFindsTyposOnly(t *testing.T) {
	keys := Keys()
	tests := []struct{ in, want string }{
		{"web_server.defualt_port", "web_server.default_port"},
		{"smtp_server.max_mesage_size", "smtp_server.max_message_size"},
		{"smtp.prot", "smtp.port"},
		{"foo.bar", ""},
		{"web_server.colour", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"", "abc", 3}, {"abc", "abd", 1},
		{"defualt", "default", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
