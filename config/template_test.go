package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTemplateLoadsCleanly(t *testing.T) {
	tests := []struct {
		name string
		opts TemplateOptions
		smtp int
		web  int
	}{
		{"defaults", TemplateOptions{SecretKey: "0123456789abcdef"}, 25, 5000},
		{"custom ports", TemplateOptions{SecretKey: "k", SMTPPort: 2525, WebPort: 8080}, 2525, 8080},
		{"secret needing quotes", TemplateOptions{SecretKey: `a: "b" # c 'd'`}, 25, 5000},
		{"long secret", TemplateOptions{SecretKey: strings.Repeat("abcdef0123456789", 16)}, 25, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := Template(tt.opts)
			if err != nil {
				t.Fatalf("Template: %v", err)
			}
			path := filepath.Join(t.TempDir(), "postal.yml")
			if err := os.WriteFile(path, text, 0o600); err != nil {
				t.Fatal(err)
			}
			c := mustLoad(t, path, noEnv)
			dir := filepath.Dir(path)
			checks := []struct {
				what      string
				got, want any
			}{
				{"secret", c.Rails.SecretKey, tt.opts.SecretKey},
				{"smtp port", c.SMTPServer.DefaultPort, tt.smtp},
				{"web port", c.WebServer.DefaultPort, tt.web},
				{"sqlite beside the file", c.Database.Path, dir + "/postal.sqlite"},
				{"driver", c.Database.Driver, "sqlite"},
				{"signing key beside the file", c.Postal.SigningKeyPath, dir + "/signing.key"},
				{"local redis", c.Redis.URL, "redis://127.0.0.1:6379/0"},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %#v, want %#v", ch.what, ch.got, ch.want)
				}
			}
			if !strings.Contains(string(text), "signing_key_path: $config-file-root/signing.key") {
				t.Errorf("template does not spell signing_key_path with $config-file-root")
			}
			if !strings.Contains(string(text), "\n# ") {
				t.Errorf("template has no comments")
			}
		})
	}
}

func TestTemplateRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts TemplateOptions
		want string
	}{
		{"empty secret", TemplateOptions{}, "secret key is empty"},
		{"smtp port too high", TemplateOptions{SecretKey: "k", SMTPPort: 70000}, "smtp port 70000"},
		{"negative web port", TemplateOptions{SecretKey: "k", WebPort: -1}, "web port -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Template(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Template = %v, want error containing %q", err, tt.want)
			}
		})
	}
}
