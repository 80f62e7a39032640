package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestAcceptedConfigsReportExactWarnings loads each testdata/warnings/<name>.yml, which
// must load, and compares its warnings with <name>.golden; Strict must turn exactly
// those warnings into errors.
func TestAcceptedConfigsReportExactWarnings(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "warnings", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d warning cases, want at least 6", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yml")
		t.Run(name, func(t *testing.T) {
			base := strings.TrimSuffix(file, ".yml")
			cfg, err := Load(file, envFile(t, base+".env"))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var lines strings.Builder
			for _, w := range cfg.Warnings {
				lines.WriteString(w.Path + ": " + w.Message + "\n")
			}
			got := lines.String()
			golden := base + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if got != string(want) {
				t.Errorf("warnings differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			var probs *Problems
			strict := cfg.Strict()
			switch {
			case len(cfg.Warnings) == 0 && strict != nil:
				t.Errorf("Strict() = %v with no warnings", strict)
			case len(cfg.Warnings) > 0 && (!errors.As(strict, &probs) || probs.Error()+"\n" != got):
				t.Errorf("Strict() = %v, want the warnings as problems", strict)
			}
		})
	}
}

func TestPostalInstallerV3FileKeepsPostalValues(t *testing.T) {
	c := mustLoad(t, filepath.Join("testdata", "warnings", "postal_installer_v3.yml"), noEnv)
	if !c.HasPostalDatabase() || c.MainDB.Username != "root" || c.MainDB.Password != "postal" || c.MainDB.Database != "postal" ||
		c.MainDB.Port != 3306 || c.MessageDB.DatabaseNamePrefix != "postal" {
		t.Errorf("main_db/message_db = %+v %+v", c.MainDB, c.MessageDB)
	}
	// Postal reads neither dns.return_path nor dns.smtp_server_hostname in this layout.
	if c.DNS.ReturnPathDomain != "rp.postal.example.com" || c.Postal.SMTPHostname != "postal.yourdomain.com" {
		t.Errorf("dns.return_path_domain = %q, postal.smtp_hostname = %q", c.DNS.ReturnPathDomain, c.Postal.SMTPHostname)
	}
	if c.Database.Driver != "sqlite" || filepath.Base(c.Database.Path) != "postal.sqlite" {
		t.Errorf("own database = %+v, want sqlite beside the file", c.Database)
	}
	note := c.PostalDatabaseNote()
	if !strings.Contains(note, "127.0.0.1:3306") || !strings.Contains(note, "database.*") || strings.Contains(note, "postal@") {
		t.Errorf("note = %q", note)
	}
	if r := c.Redacted(); r.MainDB.Password != RedactedText || r.MessageDB.Password != RedactedText {
		t.Errorf("Redacted kept the MariaDB passwords: %q %q", r.MainDB.Password, r.MessageDB.Password)
	}
}

func TestPostalInstallerV1FileMapsLegacyKeys(t *testing.T) {
	c := mustLoad(t, filepath.Join("testdata", "warnings", "postal_installer_v1.yml"), noEnv)
	checks := []struct {
		key       string
		got, want any
	}{
		{"web.host", c.Postal.WebHostname, "postal.yourdomain.com"},
		{"web.protocol", c.Postal.WebProtocol, "https"},
		{"dns.smtp_server_hostname", c.Postal.SMTPHostname, "postal.yourdomain.com"},
		{"dns.return_path", c.DNS.ReturnPathDomain, "rp.postal.yourdomain.com"},
		{"web_server.port", c.WebServer.DefaultPort, 5000},
		{"web_server.bind_address", c.WebServer.DefaultBindAddress, "127.0.0.1"},
		{"smtp_server.port", c.SMTPServer.DefaultPort, 25},
		{"message_db.prefix", c.MessageDB.DatabaseNamePrefix, "postal"},
		{"main_db.username", c.MainDB.Username, "root"},
		{"smtp.port", c.SMTP.Port, 2525},
		{"version", c.Version, 2},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s -> %v, want %v", ck.key, ck.got, ck.want)
		}
	}
	if !c.HasPostalDatabase() {
		t.Error("HasPostalDatabase false for a file with main_db")
	}
}

func TestLegacyRelaysAndGraylogMap(t *testing.T) {
	c := mustLoad(t, filepath.Join("testdata", "warnings", "legacy_relays.yml"), noEnv)
	want := []string{"smtp://relay1.example.com:2525?ssl_mode=TLS", "smtp://relay2.example.com:25"}
	if !slices.Equal(c.Postal.SMTPRelays, want) {
		t.Errorf("smtp_relays -> %v, want %v", c.Postal.SMTPRelays, want)
	}
	if c.GELF.Host != "gelf.example.com" || c.GELF.Facility != "mail" || c.GELF.Port != 12201 {
		t.Errorf("logging.graylog -> %+v", c.GELF)
	}
	if c.Postal.DefaultMaximumDeliveryAttempts != 12 || c.Logging.SentryDSN == "" || !c.SMTPServer.LogConnections {
		t.Errorf("general/smtp_server keys not mapped: %+v %+v", c.Postal, c.SMTPServer)
	}
	if c.Redis.URL != "redis://127.0.0.1:6379/3" {
		t.Errorf("our own section in a v1 file: redis.url = %q", c.Redis.URL)
	}
	if c.HasPostalDatabase() {
		t.Error("HasPostalDatabase true without main_db")
	}
}

func TestPostalDatabaseFromEnvironment(t *testing.T) {
	c := mustLoad(t, "", mapEnv(map[string]string{"MAIN_DB_HOST": "db.internal", "MAIN_DB_PORT": "3307"}))
	if !c.HasPostalDatabase() || c.MainDB.Host != "db.internal" || c.MainDB.Port != 3307 {
		t.Errorf("MAIN_DB_* = %+v (postal db %v)", c.MainDB, c.HasPostalDatabase())
	}
	if c := mustLoad(t, "", noEnv); c.HasPostalDatabase() || c.PostalDatabaseNote() != "" {
		t.Error("defaults claim a Postal database")
	}
}

func TestLegacyKeysTargetRealKeys(t *testing.T) {
	keys := Keys()
	for _, from := range sortedLegacyKeys() {
		if to := legacyKeys[from]; !slices.Contains(keys, to) {
			t.Errorf("legacy key %s maps to %s, which is not a key", from, to)
		}
	}
}

// An empty environment value for a number or boolean is unset, as Postal
// reads it, with a warning; a bad one is still an error.
func TestEmptyEnvironmentValuesAreUnset(t *testing.T) {
	c := mustLoad(t, "", mapEnv(map[string]string{"SMTP_SERVER_DEFAULT_PORT": "", "SMTP_SERVER_TLS_ENABLED": " ", "POSTAL_WEB_HOSTNAME": "mail.example.com"}))
	if c.SMTPServer.DefaultPort != 25 || c.SMTPServer.TLSEnabled || c.Postal.WebHostname != "mail.example.com" {
		t.Fatalf("port %d tls %v host %q", c.SMTPServer.DefaultPort, c.SMTPServer.TLSEnabled, c.Postal.WebHostname)
	}
	want := []Problem{
		{Path: "SMTP_SERVER_DEFAULT_PORT", Message: "empty, ignored as Postal ignores it (smtp_server.default_port keeps its value)"},
		{Path: "SMTP_SERVER_TLS_ENABLED", Message: "empty, ignored as Postal ignores it (smtp_server.tls_enabled keeps its value)"},
	}
	if !slices.Equal(c.Warnings, want) {
		t.Fatalf("warnings = %v, want %v", c.Warnings, want)
	}
	if _, err := Load("", mapEnv(map[string]string{"SMTP_SERVER_DEFAULT_PORT": "x"})); err == nil {
		t.Fatal("a bad value loaded")
	}
}

// A file without a version is read in the legacy layout only when it uses a
// key of that layout; otherwise its version 2 keys count.
func TestVersionlessFileLayout(t *testing.T) {
	c := mustLoad(t, writeConfig(t, "postal:\n  web_hostname: mail.example.com\nweb_server:\n  default_port: 5001\n"), noEnv)
	if c.Postal.WebHostname != "mail.example.com" || c.WebServer.DefaultPort != 5001 || len(c.Warnings) != 0 {
		t.Errorf("version-2 keys without a version: host %q port %d warnings %v", c.Postal.WebHostname, c.WebServer.DefaultPort, c.Warnings)
	}
	c = mustLoad(t, writeConfig(t, "web_server:\n  port: 5002\n"), noEnv)
	if c.WebServer.DefaultPort != 5002 || len(c.Warnings) != 1 || c.Warnings[0].Path != "version" {
		t.Errorf("legacy key without a version: port %d warnings %v", c.WebServer.DefaultPort, c.Warnings)
	}
}

// testdata/warnings/postal_all_keys.yml holds all 110 keys of Postal's schema
// (its golden file, empty, says none of them is warned about).
func TestPostalSchemaFileHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "warnings", "postal_all_keys.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range doc {
		if m, ok := v.(map[string]any); ok {
			n += len(m)
		}
	}
	if n != 110 {
		t.Fatalf("%d keys, want Postal's 110", n)
	}
}
