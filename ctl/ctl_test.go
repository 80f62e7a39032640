package ctl_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postalgo/postal/ctl"
	"github.com/postalgo/postal/ctl/cli"
)

type run struct {
	code     int
	out, err string
}

func postalctl(t *testing.T, env map[string]string, args ...string) run {
	t.Helper()
	io := cli.NewTestIO("", false)
	code := ctl.Main(context.Background(), args, io.IOStreams, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	return run{code, io.Out.String(), io.ErrOut.String()}
}

// A newcomer's path: init writes a config and key that validate, upgrade
// and expose a public key; a second init refuses to overwrite.
func TestInitValidateUpgradeSigningKey(t *testing.T) {
	dir := t.TempDir()
	r := postalctl(t, nil, "init", "--dir", dir, "--smtp-port", "2525", "--json")
	if r.code != 0 {
		t.Fatalf("init: %d %s", r.code, r.err)
	}
	var res struct {
		ConfigPath string `json:"config_path"`
		KeyCreated bool   `json:"signing_key_created"`
	}
	if err := json.Unmarshal([]byte(r.out), &res); err != nil || !res.KeyCreated {
		t.Fatalf("init output %q: %v", r.out, err)
	}
	st, err := os.Stat(filepath.Join(dir, "signing.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing.key: %v mode %v", err, st.Mode())
	}
	cfg := filepath.Join(dir, "postal.yml")
	if r := postalctl(t, nil, "--config", cfg, "config", "validate"); r.code != 0 || !strings.Contains(r.out, "is valid") {
		t.Fatalf("validate: %d %q %q", r.code, r.out, r.err)
	}
	if r := postalctl(t, nil, "--config", cfg, "upgrade"); r.code != 0 {
		t.Fatalf("upgrade: %d %q", r.code, r.err)
	}
	if r := postalctl(t, nil, "--config", cfg, "signing-key", "public"); r.code != 0 || !strings.HasPrefix(r.out, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public: %d %q %q", r.code, r.out, r.err)
	}
	r = postalctl(t, nil, "--config", cfg, "signing-key", "public", "--format", "jwk")
	var jwk map[string]string
	if err := json.Unmarshal([]byte(r.out), &jwk); err != nil || jwk["kty"] != "RSA" || jwk["alg"] != "RS256" || jwk["kid"] == "" {
		t.Fatalf("jwk: %q %v", r.out, err)
	}
	if r := postalctl(t, nil, "init", "--dir", dir); r.code != 1 || !strings.Contains(r.err, "already exists; use --force") {
		t.Fatalf("second init: %d %q", r.code, r.err)
	}
	if r := postalctl(t, nil, "--config", cfg, "signing-key", "generate"); r.code != 1 || !strings.Contains(r.err, "--force") {
		t.Fatalf("generate over existing key: %d %q", r.code, r.err)
	}
	r = postalctl(t, nil, "--config", cfg, "config", "show")
	if r.code != 0 || !strings.Contains(r.out, "secret_key: '[redacted]'") && !strings.Contains(r.out, "secret_key: \"[redacted]\"") {
		t.Fatalf("show did not redact the secret: %d\n%s", r.code, r.out)
	}
}

func TestInvalidConfigExitsTwoListingEveryProblem(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "postal.yml")
	body := "version: 2\nsmtp_server:\n  default_port: 70000\nweb_server:\n  defualt_port: 5000\ndatabase:\n  driver: mysql\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := postalctl(t, nil, "--config", cfg, "config", "validate")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", r.code, r.err)
	}
	for _, want := range []string{
		"configuration has 2 problem(s)",
		"smtp_server.default_port: 70000 is not a port (1-65535)",
		`database.driver: "mysql" is not one of sqlite, postgres`,
	} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	r = postalctl(t, nil, "--config", cfg, "--json", "config", "validate")
	var res struct {
		Valid    bool              `json:"valid"`
		Problems []json.RawMessage `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.out), &res); err != nil || r.code != 2 || res.Valid || len(res.Problems) != 2 {
		t.Fatalf("json validate: code %d out %q err %v", r.code, r.out, err)
	}
	// An environment variable overrides the file and is checked too.
	r = postalctl(t, map[string]string{"SMTP_SERVER_DEFAULT_PORT": "abc"}, "--config", cfg, "config", "validate")
	if r.code != 2 || !strings.Contains(r.err, `SMTP_SERVER_DEFAULT_PORT: "abc" is not a number`) {
		t.Fatalf("env problem: %d %q", r.code, r.err)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"nonsense"}, {"upgrade", "--nope"}, {"version", "extra"}, {"signing-key", "generate", "--bits", "512", "--out", "/tmp/x"}} {
		if r := postalctl(t, nil, args...); r.code != 2 || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
			t.Errorf("%v: exit %d stderr %q; want 2 and one line", args, r.code, r.err)
		}
	}
}

// An unmodified postal.yml from Postal's installer validates, with warnings
// for the keys Postal ignores and a note on where data lives; --strict makes
// the warnings errors; show --json speaks the file's key names.
func TestPostalInstallerConfigValidatesWithWarnings(t *testing.T) {
	cfg := filepath.Join("..", "config", "testdata", "warnings", "postal_installer_v3.yml")
	r := postalctl(t, nil, "--config", cfg, "config", "validate")
	if r.code != 0 || !strings.Contains(r.out, "is valid") {
		t.Fatalf("validate: exit %d out %q err %q", r.code, r.out, r.err)
	}
	for _, want := range []string{
		"warning: dns.return_path: unknown key, ignored: the version 1 name of dns.return_path_domain",
		"warning: message_db.prefix: unknown key, ignored",
	} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if !strings.Contains(r.out, "note: main_db/message_db describe Postal's MariaDB at 127.0.0.1:3306") {
		t.Errorf("no note on the Postal database:\n%s", r.out)
	}

	r = postalctl(t, nil, "--config", cfg, "config", "validate", "--strict")
	if r.code != 2 || !strings.Contains(r.err, "configuration has 3 problem(s)") || !strings.Contains(r.err, "dns.smtp_server_hostname") {
		t.Fatalf("--strict: exit %d err %q", r.code, r.err)
	}
	r = postalctl(t, nil, "--config", cfg, "--json", "config", "validate")
	var res struct {
		Valid    bool              `json:"valid"`
		Warnings []json.RawMessage `json:"warnings"`
		Notes    []string          `json:"notes"`
	}
	if err := json.Unmarshal([]byte(r.out), &res); err != nil || r.code != 0 || !res.Valid || len(res.Warnings) != 3 || len(res.Notes) != 1 {
		t.Fatalf("json validate: code %d out %q err %v", r.code, r.out, err)
	}

	r = postalctl(t, nil, "--config", cfg, "--json", "config", "show")
	var top map[string]any
	if err := json.Unmarshal([]byte(r.out), &top); err != nil || r.code != 0 || top["version"] != float64(2) {
		t.Fatalf("show --json: code %d err %v out %q", r.code, err, r.out)
	}
	shown := map[string]map[string]any{}
	for k, v := range top {
		if m, ok := v.(map[string]any); ok {
			shown[k] = m
		}
	}
	if shown["web_server"]["default_port"] != float64(5000) || shown["main_db"]["password"] != "[redacted]" ||
		shown["postal"]["smtp_hostname"] != "postal.yourdomain.com" {
		t.Errorf("show --json keys: web_server=%v main_db=%v", shown["web_server"], shown["main_db"])
	}
}
