package config

// This file holds what lets an unmodified Postal postal.yml load: Postal's
// MariaDB sections (kept as the source of `postalctl import-postal`), the
// legacy version 1 layout (mapped key by key as Postal maps it), and the
// hints given for keys Postal ignores.

import (
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MainDB is Postal's main_db section: the MariaDB database of the Postal
// installation being replaced. postald never uses it; postalctl import-postal
// reads organisations, servers, domains and the rest from it.
type MainDB struct {
	// Host is the MariaDB host.
	Host string `yaml:"host"`
	// Port is the MariaDB port.
	Port int `yaml:"port" validate:"port"`
	// Username authenticates with Password.
	Username string `yaml:"username"`
	// Password is a secret (hidden by Redacted).
	Password string `yaml:"password"`
	// Database is the name of Postal's main database.
	Database string `yaml:"database"`
	// PoolSize is Postal's connection pool size, kept for compatibility.
	PoolSize int `yaml:"pool_size" validate:"gte=0"`
	// Encoding is the connection character set.
	Encoding string `yaml:"encoding"`
}

// MessageDB is Postal's message_db section: where Postal keeps one database
// per mail server, named <database_name_prefix>-server-<id>. Only
// postalctl import-postal reads it (for each server's suppression list).
type MessageDB struct {
	// Host is the MariaDB host.
	Host string `yaml:"host"`
	// Port is the MariaDB port.
	Port int `yaml:"port" validate:"port"`
	// Username authenticates with Password.
	Username string `yaml:"username"`
	// Password is a secret (hidden by Redacted).
	Password string `yaml:"password"`
	// Encoding is the connection character set.
	Encoding string `yaml:"encoding"`
	// DatabaseNamePrefix starts the name of every per-server database.
	DatabaseNamePrefix string `yaml:"database_name_prefix"`
}

// HasPostalDatabase reports whether the file or the environment described
// Postal's MariaDB (main_db or message_db): a configuration carried over from
// Postal, which postald does not use for its own data.
func (c *Config) HasPostalDatabase() bool { return c.postalDB }

// PostalDatabaseNote is the one-line notice postald logs at start and
// `postalctl config validate` prints when HasPostalDatabase: where Postal's
// data is read from and where postald keeps its own. It is "" otherwise.
func (c *Config) PostalDatabaseNote() string {
	if !c.postalDB {
		return ""
	}
	own := "sqlite " + c.Database.Path
	if c.Database.Driver == "postgres" {
		own = "postgres " + redactDSN(c.Database.URL)
	}
	return fmt.Sprintf("main_db/message_db describe Postal's MariaDB at %s:%d (database %s), read only by `postalctl import-postal`; postald keeps its own data in database.* (%s)",
		c.MainDB.Host, c.MainDB.Port, c.MainDB.Database, own)
}

// Strict returns the warnings as a *Problems error (nil when there are none),
// for callers that treat warnings as errors (`config validate --strict`).
func (c *Config) Strict() error {
	p := Problems{List: append([]Problem(nil), c.Warnings...)}
	return p.errOrNil()
}

// legacyKeys maps the keys of Postal's version 1 layout to the version 2 keys
// Postal reads them as (lib/postal/legacy_config_source.rb). postal.smtp_relays
// comes from the top-level smtp_relays list and is handled apart.
var legacyKeys = map[string]string{
	"web.host":                               "postal.web_hostname",
	"web.protocol":                           "postal.web_protocol",
	"dns.smtp_server_hostname":               "postal.smtp_hostname",
	"general.use_ip_pools":                   "postal.use_ip_pools",
	"general.exception_url":                  "logging.sentry_dsn",
	"general.maximum_delivery_attempts":      "postal.default_maximum_delivery_attempts",
	"general.maximum_hold_expiry_days":       "postal.default_maximum_hold_expiry_days",
	"general.suppression_list_removal_delay": "postal.default_suppression_list_automatic_removal_days",
	"general.use_local_ns_for_domains":       "postal.use_local_ns_for_domain_verification",
	"general.default_spam_threshold":         "postal.default_spam_threshold",
	"general.default_spam_failure_threshold": "postal.default_spam_failure_threshold",
	"general.use_resent_sender_header":       "postal.use_resent_sender_header",
	"web_server.bind_address":                "web_server.default_bind_address",
	"web_server.port":                        "web_server.default_port",
	"web_server.max_threads":                 "web_server.max_threads",
	"main_db.host":                           "main_db.host",
	"main_db.port":                           "main_db.port",
	"main_db.username":                       "main_db.username",
	"main_db.password":                       "main_db.password",
	"main_db.database":                       "main_db.database",
	"main_db.pool_size":                      "main_db.pool_size",
	"main_db.encoding":                       "main_db.encoding",
	"message_db.host":                        "message_db.host",
	"message_db.port":                        "message_db.port",
	"message_db.username":                    "message_db.username",
	"message_db.password":                    "message_db.password",
	"message_db.prefix":                      "message_db.database_name_prefix",
	"logging.rails_log":                      "logging.rails_log_enabled",
	"logging.graylog.host":                   "gelf.host",
	"logging.graylog.port":                   "gelf.port",
	"logging.graylog.facility":               "gelf.facility",
	"smtp_server.port":                       "smtp_server.default_port",
	"smtp_server.bind_address":               "smtp_server.default_bind_address",
	"smtp_server.tls_enabled":                "smtp_server.tls_enabled",
	"smtp_server.tls_certificate_path":       "smtp_server.tls_certificate_path",
	"smtp_server.tls_private_key_path":       "smtp_server.tls_private_key_path",
	"smtp_server.tls_ciphers":                "smtp_server.tls_ciphers",
	"smtp_server.ssl_version":                "smtp_server.ssl_version",
	"smtp_server.proxy_protocol":             "smtp_server.proxy_protocol",
	"smtp_server.log_connect":                "smtp_server.log_connections",
	"smtp_server.max_message_size":           "smtp_server.max_message_size",
	"dns.mx_records":                         "dns.mx_records",
	"dns.spf_include":                        "dns.spf_include",
	"dns.return_path":                        "dns.return_path_domain",
	"dns.route_domain":                       "dns.route_domain",
	"dns.track_domain":                       "dns.track_domain",
	"dns.helo_hostname":                      "dns.helo_hostname",
	"dns.dkim_identifier":                    "dns.dkim_identifier",
	"dns.domain_verify_prefix":               "dns.domain_verify_prefix",
	"dns.custom_return_path_prefix":          "dns.custom_return_path_prefix",
	"smtp.host":                              "smtp.host",
	"smtp.port":                              "smtp.port",
	"smtp.username":                          "smtp.username",
	"smtp.password":                          "smtp.password",
	"smtp.from_name":                         "smtp.from_name",
	"smtp.from_address":                      "smtp.from_address",
	"rails.environment":                      "rails.environment",
	"rails.secret_key":                       "rails.secret_key",
	"rspamd.enabled":                         "rspamd.enabled",
	"rspamd.host":                            "rspamd.host",
	"rspamd.port":                            "rspamd.port",
	"rspamd.ssl":                             "rspamd.ssl",
	"rspamd.password":                        "rspamd.password",
	"rspamd.flags":                           "rspamd.flags",
	"spamd.enabled":                          "spamd.enabled",
	"spamd.host":                             "spamd.host",
	"spamd.port":                             "spamd.port",
	"clamav.enabled":                         "clamav.enabled",
	"clamav.host":                            "clamav.host",
	"clamav.port":                            "clamav.port",
	"smtp_client.open_timeout":               "smtp_client.open_timeout",
	"smtp_client.read_timeout":               "smtp_client.read_timeout",
}

// legacySections are the top-level keys only the version 1 layout has.
var legacySections = map[string]bool{"web": true, "general": true, "smtp_relays": true, "rabbitmq": true}

// ourSections are postal's own sections: they are read the same way in
// either layout, so a version 1 file can carry them.
var ourSections = map[string]bool{"database": true, "redis": true, "requeuer": true, "cron": true, "inspection": true}

// looksLegacy reports whether a file without a version key is in the version
// 1 layout: it has a section or a key only that layout has. (Postal reads
// every file without a version as version 1; a file with only version 2 keys
// is read as version 2 here, so its settings are not silently dropped.)
func looksLegacy(pairs []pair) bool {
	for _, p := range pairs {
		if legacySections[p.key] {
			return true
		}
		if p.val == nil || p.val.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(p.val.Content); i += 2 {
			path := p.key + "." + p.val.Content[i].Value
			if to, ok := legacyKeys[path]; ok && to != path && !isV2Key(path) {
				return true
			}
			if path == "logging.graylog" {
				return true
			}
		}
	}
	return false
}

func isV2Key(path string) bool {
	for _, k := range Keys() {
		if k == path {
			return true
		}
	}
	return false
}

// decodeLegacy sets c from a version 1 document's pairs, as Postal's legacy
// source does; keys Postal does not map become warnings. legacyFrom records,
// for each version 2 key set, the version 1 key it came from.
func decodeLegacy(c *Config, pairs []pair, idx map[string]reflect.Value, probs, warns *Problems, legacyFrom map[string]string) {
	warns.add("version", "this file uses Postal's legacy version 1 layout; its keys are read as Postal maps them (postalctl config show prints the version 2 equivalent)")
	for _, p := range pairs {
		switch {
		case p.key == "version":
		case ourSections[p.key]:
			decodeSection(p.key, p.val, idx, probs, warns)
		case p.key == "smtp_relays":
			decodeLegacyRelays(p.val, idx["postal.smtp_relays"], probs, warns)
			legacyFrom["postal.smtp_relays"] = "smtp_relays"
		case p.val != nil && p.val.Kind == yaml.MappingNode:
			decodeLegacyMapping(p.key, p.val, idx, probs, warns, legacyFrom, 0)
		case isNull(p.val):
		default:
			warns.add(p.key, "ignored: not a key of Postal's version 1 layout")
		}
		if p.key == "main_db" || p.key == "message_db" {
			c.postalDB = true
		}
	}
}

func decodeLegacyMapping(prefix string, m *yaml.Node, idx map[string]reflect.Value, probs, warns *Problems, legacyFrom map[string]string, depth int) {
	for _, p := range mappingPairs(m, prefix, probs, 0) {
		path := prefix + "." + p.key
		if to, ok := legacyKeys[path]; ok {
			decodeValue(path, p.val, idx[to], probs)
			legacyFrom[to] = path
			continue
		}
		if depth == 0 && p.val != nil && p.val.Kind == yaml.MappingNode && path == "logging.graylog" {
			decodeLegacyMapping(path, p.val, idx, probs, warns, legacyFrom, depth+1)
			continue
		}
		warns.add(path, "ignored: Postal does not read this key from a version 1 file")
	}
}

// decodeLegacyRelays turns version 1 relays ({hostname, port, ssl_mode})
// into smtp:// URLs, as Postal does.
func decodeLegacyRelays(n *yaml.Node, fv reflect.Value, probs, warns *Problems) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		probs.add("smtp_relays", "expected a list, not %s", describe(n))
		return
	}
	var urls []string
	for i, item := range n.Content {
		item = resolve(item)
		path := fmt.Sprintf("smtp_relays[%d]", i)
		if item == nil || item.Kind != yaml.MappingNode {
			probs.add(path, "expected a mapping with hostname, port and ssl_mode, not %s", describe(item))
			continue
		}
		var host, port, mode string
		for _, p := range mappingPairs(item, path, probs, 0) {
			v := ""
			if p.val != nil && p.val.Kind == yaml.ScalarNode && !isNull(p.val) {
				v = p.val.Value
			}
			switch p.key {
			case "hostname":
				host = v
			case "port":
				port = v
			case "ssl_mode":
				mode = v
			default:
				warns.add(path+"."+p.key, "ignored: a relay has hostname, port and ssl_mode")
			}
		}
		if host == "" {
			probs.add(path+".hostname", "required")
			continue
		}
		if port == "" {
			port = "25"
		}
		if _, err := strconv.Atoi(port); err != nil {
			probs.add(path+".port", "%q is not a port", port)
			continue
		}
		u := "smtp://" + host + ":" + port
		if mode != "" {
			u += "?ssl_mode=" + url.QueryEscape(mode)
		}
		urls = append(urls, u)
	}
	fv.Set(reflect.ValueOf(urls))
}

// legacyHint is the extra advice for an unknown key of a version 2 file that
// is a version 1 name ("dns.return_path"), or "".
func legacyHint(path string) string {
	if to, ok := legacyKeys[path]; ok && to != path {
		return fmt.Sprintf("the version 1 name of %s; Postal ignores it in a version 2 file", to)
	}
	return ""
}

// sortedLegacyKeys lists the version 1 keys, for tests and documentation.
func sortedLegacyKeys() []string {
	out := make([]string, 0, len(legacyKeys))
	for k := range legacyKeys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// usedPostalDB reports whether env sets any MAIN_DB_* or MESSAGE_DB_* key.
func usedPostalDB(fromEnv map[string]string) bool {
	for path := range fromEnv {
		if strings.HasPrefix(path, "main_db.") || strings.HasPrefix(path, "message_db.") {
			return true
		}
	}
	return false
}

// renameLegacy rewrites the paths of rule violations found in a version 1
// file to the keys the file used ("postal.web_protocol" -> "web.protocol"),
// so the operator finds the line to fix. Problems set by the environment keep
// their variable's name.
func renameLegacy(probs *Problems, legacyFrom map[string]string) {
	for i, pr := range probs.List {
		base := stripIndex(pr.Path)
		if from, ok := legacyFrom[base]; ok {
			probs.List[i].Path = from + pr.Path[len(base):]
		}
	}
}
