package config

import (
	"reflect"
	"slices"
	"strconv"
	"testing"
)

func TestEnvOverridesEachType(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		get  func(*Config) any
		want any
	}{
		{"string in postal section", map[string]string{"POSTAL_WEB_HOSTNAME": "mail.example.org"},
			func(c *Config) any { return c.Postal.WebHostname }, "mail.example.org"},
		{"int in a two-word section", map[string]string{"SMTP_SERVER_DEFAULT_PORT": "2525"},
			func(c *Config) any { return c.SMTPServer.DefaultPort }, 2525},
		{"bool true", map[string]string{"POSTAL_USE_IP_POOLS": "true"},
			func(c *Config) any { return c.Postal.UseIPPools }, true},
		{"bool 1", map[string]string{"SMTP_SERVER_TLS_ENABLED": "1"},
			func(c *Config) any { return c.SMTPServer.TLSEnabled }, true},
		{"bool yes", map[string]string{"SMTP_SERVER_PROXY_PROTOCOL": "yes"},
			func(c *Config) any { return c.SMTPServer.ProxyProtocol }, true},
		{"bool no", map[string]string{"POSTAL_BATCH_QUEUED_MESSAGES": "no"},
			func(c *Config) any { return c.Postal.BatchQueuedMessages }, false},
		{"bool 0", map[string]string{"LOGGING_ENABLED": "0"},
			func(c *Config) any { return c.Logging.Enabled }, false},
		{"bool FALSE", map[string]string{"OIDC_DISCOVERY": "FALSE"},
			func(c *Config) any { return c.OIDC.Discovery }, false},
		{"list comma-separated and trimmed", map[string]string{"DNS_MX_RECORDS": "mx1.example.org, mx2.example.org,"},
			func(c *Config) any { return c.DNS.MXRecords }, []string{"mx1.example.org", "mx2.example.org"}},
		{"empty list", map[string]string{"DNS_MX_RECORDS": ""},
			func(c *Config) any { return c.DNS.MXRecords }, []string(nil)},
		{"postal list", map[string]string{"POSTAL_SMTP_RELAYS": "smtp://a.example.org:25,smtp://b.example.org:2525?ssl_mode=TLS"},
			func(c *Config) any { return c.Postal.SMTPRelays },
			[]string{"smtp://a.example.org:25", "smtp://b.example.org:2525?ssl_mode=TLS"}},
		{"list of networks", map[string]string{"SMTP_SERVER_PROXY_PROTOCOL_TRUSTED": "10.0.0.5, 2001:db8::/64"},
			func(c *Config) any { return c.SMTPServer.ProxyProtocolTrusted }, []string{"10.0.0.5", "2001:db8::/64"}},
		{"seconds whole", map[string]string{"DNS_TIMEOUT": "10"},
			func(c *Config) any { return c.DNS.Timeout }, Seconds(10)},
		{"seconds fraction", map[string]string{"REQUEUER_INTERVAL": "0.5"},
			func(c *Config) any { return c.Requeuer.Interval }, Seconds(0.5)},
		{"our section string", map[string]string{"DATABASE_URL": "postgres://postal@db/postal", "DATABASE_DRIVER": "postgres"},
			func(c *Config) any { return c.Database.URL }, "postgres://postal@db/postal"},
		{"our section with underscore key", map[string]string{"REDIS_KEY_PREFIX": "tenant1"},
			func(c *Config) any { return c.Redis.KeyPrefix }, "tenant1"},
		{"smtp header limit", map[string]string{"SMTP_SERVER_MAX_HEADER_BYTES": "65536", "SMTP_SERVER_MAX_HEADER_LINES": "500"},
			func(c *Config) any { return [2]int{c.SMTPServer.MaxHeaderBytes, c.SMTPServer.MaxHeaderLines} }, [2]int{65536, 500}},
		{"smtp in-flight budget and postmaster", map[string]string{"SMTP_SERVER_MAX_IN_FLIGHT_SIZE": "64", "SMTP_SERVER_POSTMASTER_ADDRESS": "ops@example.com"},
			func(c *Config) any {
				return c.SMTPServer.PostmasterAddress + " " + strconv.Itoa(c.SMTPServer.MaxInFlightSize)
			}, "ops@example.com 64"},
		{"env beats file", map[string]string{"WEB_SERVER_DEFAULT_PORT": "6000"},
			func(c *Config) any { return c.WebServer.DefaultPort }, 6000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, "version: 2\nweb_server:\n  default_port: 5500\n")
			c := mustLoad(t, path, mapEnv(tt.env))
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEnvNamesFollowPostalRule(t *testing.T) {
	var asked []string
	lookup := func(k string) (string, bool) {
		asked = append(asked, k)
		return "", false
	}
	mustLoad(t, "", lookup)
	for _, want := range []string{
		"POSTAL_WEB_HOSTNAME", "POSTAL_SMTP_RELAYS", "WEB_SERVER_DEFAULT_PORT",
		"SMTP_SERVER_MAX_MESSAGE_SIZE", "SMTP_SERVER_DEFAULT_PORT", "DNS_MX_RECORDS",
		"DATABASE_URL", "REDIS_KEY_PREFIX", "RAILS_SECRET_KEY", "OIDC_SCOPES",
		"MIGRATION_WAITER_SLEEP_TIME", "REQUEUER_RECONCILE_INTERVAL", "CRON_LOCK_TTL",
	} {
		if !slices.Contains(asked, want) {
			t.Errorf("Load did not look up %s", want)
		}
	}
	for _, notWanted := range []string{"PORT", "BIND_ADDRESS", "VERSION"} {
		if slices.Contains(asked, notWanted) {
			t.Errorf("Load looked up %s, which it must leave to the daemon", notWanted)
		}
	}
	if got, want := len(asked), len(Keys())-1; got != want {
		t.Errorf("looked up %d variables, want one per key except version (%d)", got, want)
	}
}
