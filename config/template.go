package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// TemplateOptions are the values Template writes into a new postal.yml.
type TemplateOptions struct {
	// SecretKey becomes rails.secret_key; it must not be empty.
	SecretKey string
	// SMTPPort becomes smtp_server.default_port; 0 means 25.
	SMTPPort int
	// WebPort becomes web_server.default_port; 0 means 5000.
	WebPort int
}

// templateText is the commented postal.yml written by `postalctl init`. Placeholders
// in braces are replaced by Template.
const templateText = `# postal.yml, written by postalctl init.
# Every key not listed keeps its default (see "postalctl config show").
# Any key can be overridden from the environment: postal.x -> POSTAL_X, and
# section.key -> SECTION_KEY (for example SMTP_SERVER_DEFAULT_PORT, DATABASE_URL).
# Durations are numbers of seconds. $config-file-root is the folder of this file.
version: 2

postal:
  # Host names this installation is reached at.
  web_hostname: postal.example.com
  web_protocol: https
  smtp_hostname: postal.example.com
  # RSA key that signs webhook requests (create it with "postalctl init" or
  # "openssl genrsa -out signing.key 2048").
  signing_key_path: $config-file-root/signing.key
  # Send all outgoing mail through relays instead of looking up MX records:
  # smtp_relays:
  #   - smtp://relay.example.com:25?ssl_mode=Auto

web_server:
  default_port: {{WEB_PORT}}
  default_bind_address: 127.0.0.1

smtp_server:
  default_port: {{SMTP_PORT}}
  default_bind_address: "::"
  # Maximum message size in megabytes.
  max_message_size: 14
  # Mail to <postmaster> and postmaster@ your host names and domains goes to the
  # route that serves this address (without one it is refused).
  # postmaster_address: postmaster@example.com
  # tls_enabled: true
  # tls_certificate_path: $config-file-root/smtp.cert
  # tls_private_key_path: $config-file-root/smtp.key
  # Behind a TCP proxy that sends PROXY headers (HAProxy send-proxy), name the
  # proxy: headers from anyone else are refused.
  # proxy_protocol: true
  # proxy_protocol_trusted: [127.0.0.1]

worker:
  # Concurrent deliveries per worker process.
  threads: 2

dns:
  # Names your customers point their DNS records at.
  mx_records:
    - mx1.postal.example.com
    - mx2.postal.example.com
  spf_include: spf.postal.example.com
  return_path_domain: rp.postal.example.com
  route_domain: routes.postal.example.com
  track_domain: track.postal.example.com

database:
  # sqlite (a file beside this one) or postgres (set url, e.g.
  # postgres://postal:password@127.0.0.1:5432/postal).
  driver: sqlite
  path: $config-file-root/postal.sqlite

redis:
  # A single server; for Sentinel or Cluster set addrs (and master_name for Sentinel).
  url: redis://127.0.0.1:6379/0
  key_prefix: postal

logging:
  # debug, info, warn or error; format auto, text or json.
  level: info
  format: auto

rails:
  # Signs web sessions: keep it secret.
  secret_key: {{SECRET_KEY}}
`

// Template returns a commented postal.yml for `postalctl init`: SQLite beside the file,
// Redis on 127.0.0.1, signing_key_path $config-file-root/signing.key, the given secret
// key and ports. The result is guaranteed to load without problems (Template checks it);
// it returns an error when the options are invalid.
func Template(o TemplateOptions) ([]byte, error) {
	if o.SecretKey == "" {
		return nil, errors.New("template: secret key is empty")
	}
	if o.SMTPPort == 0 {
		o.SMTPPort = 25
	}
	if o.WebPort == 0 {
		o.WebPort = 5000
	}
	for name, p := range map[string]int{"smtp port": o.SMTPPort, "web port": o.WebPort} {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("template: %s %d is not a port (1-65535)", name, p)
		}
	}
	secret, err := yaml.Marshal(o.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("template: quote secret key: %w", err)
	}
	text := strings.NewReplacer(
		"{{WEB_PORT}}", strconv.Itoa(o.WebPort),
		"{{SMTP_PORT}}", strconv.Itoa(o.SMTPPort),
		"{{SECRET_KEY}}", strings.TrimSuffix(string(secret), "\n"),
	).Replace(templateText)

	c := Defaults()
	var probs Problems
	decodeFile(c, []byte(text), "template", &probs, &probs, map[string]string{})
	c.validateInto(&probs, nil)
	if err := probs.errOrNil(); err != nil {
		return nil, fmt.Errorf("template does not load: %w", err)
	}
	if c.Rails.SecretKey != o.SecretKey {
		return nil, errors.New("template: secret key does not survive quoting")
	}
	return []byte(text), nil
}
