package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as postal.yml: Load must not panic, and must return
// either a configuration that validates or a *Problems.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*", "*.yml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("web_server: &w\n  <<: *w\n"))
	f.Add([]byte("? [a, b]\n: c\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "postal.yml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, noEnv)
		if err != nil {
			var probs *Problems
			if !errors.As(err, &probs) {
				t.Fatalf("Load error is %T (%v), want *Problems", err, err)
			}
			if len(probs.List) == 0 || c != nil {
				t.Fatalf("Load returned %v with empty problems or a config", err)
			}
			return
		}
		if c == nil {
			t.Fatal("Load returned neither config nor error")
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
	})
}
