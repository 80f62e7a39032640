package config

import (
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// RedactedText replaces each secret in the output of Redacted.
const RedactedText = "[redacted]"

// Redacted returns a deep copy of c with every secret replaced by RedactedText:
// smtp.password, rails.secret_key, oidc.secret, rspamd.password, redis.password,
// logging.sentry_dsn, and the password inside database.url, redis.url and
// postal.smtp_relays (user-info or a password parameter). Empty secrets stay empty, so the
// copy still shows which are unset. c is not modified.
func (c *Config) Redacted() *Config {
	r := *c
	for _, l := range leaves(&r) {
		if l.v.Kind() == reflect.Slice && !l.v.IsNil() {
			l.v.Set(reflect.ValueOf(slices.Clone(l.v.Interface().([]string))))
		}
	}
	for _, s := range []*string{
		&r.SMTP.Password, &r.Rails.SecretKey, &r.OIDC.Secret, &r.Rspamd.Password,
		&r.Redis.Password, &r.Logging.SentryDSN, &r.MainDB.Password, &r.MessageDB.Password,
	} {
		if *s != "" {
			*s = RedactedText
		}
	}
	r.Database.URL = redactDSN(r.Database.URL)
	r.Redis.URL = redactDSN(r.Redis.URL)
	for i, relay := range r.Postal.SMTPRelays {
		r.Postal.SMTPRelays[i] = redactDSN(relay)
	}
	return &r
}

// redactDSN hides the password in a URL (user-info and any query parameter whose name
// contains "password") or in a keyword/value DSN (password=...). A URL that cannot be
// parsed is hidden entirely.
func redactDSN(s string) string {
	if s == "" {
		return s
	}
	if !strings.Contains(s, "://") {
		kv := regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)
		return kv.ReplaceAllString(s, "${1}"+RedactedText)
	}
	u, err := url.Parse(s)
	if err != nil {
		return RedactedText
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			key, _, _ := strings.Cut(p, "=")
			if strings.Contains(strings.ToLower(key), "password") {
				parts[i] = key + "=" + RedactedText
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	out := u.String()
	if _, has := u.User.Password(); has {
		// url.URL.Redacted writes the password as "xxxxx"; ours is clearer.
		out = strings.Replace(u.Redacted(), ":xxxxx@", ":"+RedactedText+"@", 1)
	}
	return out
}
