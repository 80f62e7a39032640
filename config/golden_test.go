package config

import (
	"bufio"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the current output")

// envFile reads KEY=VALUE lines (blank lines and # comments ignored) into a lookup
// function; a missing file gives an empty environment.
func envFile(t *testing.T, path string) func(string) (string, bool) {
	t.Helper()
	env := map[string]string{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return mapEnv(env)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return mapEnv(env)
}

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// TestInvalidConfigsReportExactProblems loads each testdata/invalid/<name>.yml (with the
// environment in <name>.env, if any) and compares the problems with <name>.golden.
func TestInvalidConfigsReportExactProblems(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d invalid cases, want at least 20", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yml")
		t.Run(name, func(t *testing.T) {
			base := strings.TrimSuffix(file, ".yml")
			cfg, err := Load(file, envFile(t, base+".env"))
			var probs *Problems
			if !errors.As(err, &probs) {
				t.Fatalf("Load = %v, %v; want *Problems", cfg, err)
			}
			if cfg != nil {
				t.Errorf("Load returned a config alongside problems")
			}
			got := probs.Error() + "\n"
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
				t.Errorf("problems differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}
