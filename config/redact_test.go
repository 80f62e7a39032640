package config

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestRedactedHidesEverySecret(t *testing.T) {
	c := Defaults()
	secrets := map[string]*string{
		"smtp.password":      &c.SMTP.Password,
		"rails.secret_key":   &c.Rails.SecretKey,
		"oidc.secret":        &c.OIDC.Secret,
		"rspamd.password":    &c.Rspamd.Password,
		"redis.password":     &c.Redis.Password,
		"logging.sentry_dsn": &c.Logging.SentryDSN,
	}
	for name, p := range secrets {
		*p = "SECRET-" + strings.ReplaceAll(name, ".", "-")
	}
	c.Logging.SentryDSN = "https://SECRET-sentry-key@o1.ingest.sentry.io/2"
	c.Database.URL = "postgres://postal:SECRET-db-pass@db.example.com:5432/postal?sslmode=require"
	c.Redis.URL = "rediss://default:SECRET-redis-url-pass@redis.example.com:6380/0"
	c.Postal.SMTPRelays = []string{"smtp://relay.example.com:25", "smtp://u:SECRET-relay@relay.example.com:25"}
	before := *c
	beforeRelays := append([]string(nil), c.Postal.SMTPRelays...)

	r := c.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "SECRET") {
		t.Errorf("redacted config still shows a secret:\n%s", out)
	}
	tests := []struct {
		name      string
		got, want string
	}{
		{"plain secret", r.SMTP.Password, RedactedText},
		{"database url keeps its shape", r.Database.URL, "postgres://postal:[redacted]@db.example.com:5432/postal?sslmode=require"},
		{"redis url keeps its shape", r.Redis.URL, "rediss://default:[redacted]@redis.example.com:6380/0"},
		{"relay without credentials untouched", r.Postal.SMTPRelays[0], "smtp://relay.example.com:25"},
		{"non-secret untouched", r.Postal.WebHostname, "postal.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if !reflect.DeepEqual(*c, before) || !reflect.DeepEqual(c.Postal.SMTPRelays, beforeRelays) {
		t.Errorf("Redacted modified the original")
	}
}

func TestRedactedLeavesEmptySecretsEmpty(t *testing.T) {
	r := Defaults().Redacted()
	if r.SMTP.Password != "" || r.Rails.SecretKey != "" || r.Database.URL != "" {
		t.Errorf("unset secrets should stay empty so operators see they are unset: %+v %+v", r.SMTP, r.Rails)
	}
}

func TestRedactDSNForms(t *testing.T) {
	tests := []struct{ in, want string }{
		{"host=db user=postal password=hunter2 dbname=postal", "host=db user=postal password=[redacted] dbname=postal"},
		{"host=db password='a b\\'c' dbname=postal", "host=db password=[redacted] dbname=postal"},
		{"postgres://db/postal?user=postal&password=hunter2", "postgres://db/postal?user=postal&password=[redacted]"},
		{"postgres://postal@db/postal", "postgres://postal@db/postal"},
		{"postgres://u:p@[bad", RedactedText},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redactDSN(tt.in); got != tt.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
