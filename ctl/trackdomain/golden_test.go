package trackdomain_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// step is one command line of a scenario: it must exit with code; a failing
// step's error must contain errText; stdout must contain out; a step with
// json set adds its normalised --json output to the scenario's golden
// transcript.
type step struct {
	args    []string
	code    int
	errText string
	out     string
	json    bool
}

// run executes steps in order and returns the transcript of the json ones.
func run(t *testing.T, e *clitest.Env, newCmd func(*cli.Factory) *cobra.Command, steps []step) string {
	t.Helper()
	var b strings.Builder
	for _, s := range steps {
		args := s.args
		if s.json {
			args = append(append([]string{}, args...), "--json")
		}
		res := e.Run(t, newCmd, args...)
		if res.Code != s.code {
			t.Fatalf("%v: exit %d, want %d (err %v, out %q)", args, res.Code, s.code, res.RunErr, res.Out)
		}
		if s.errText != "" && (res.RunErr == nil || !strings.Contains(res.RunErr.Error(), s.errText)) {
			t.Fatalf("%v: error %v, want one containing %q", args, res.RunErr, s.errText)
		}
		if !strings.Contains(res.Out, s.out) {
			t.Fatalf("%v: output %q does not contain %q", args, res.Out, s.out)
		}
		if s.json {
			b.WriteString("$ " + strings.Join(s.args, " ") + "\n" + normalize(t, res.Out))
		}
	}
	return b.String()
}

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$`)
	selectorRE = regexp.MustCompile(`postal-[A-Z]{6}\._domainkey`)
	verifyRE   = regexp.MustCompile(`postal-verification [0-9a-f]{32}`)
)

// volatile are the JSON keys whose values differ between runs.
func volatile(key string) bool {
	switch key {
	case "id", "uuid", "created_at", "updated_at", "verified_at", "dns_checked_at", "timestamp", "keep_until",
		"last_used_at", "suspended_at", "token", "verification_token", "key", "key_hint", "dkim_identifier_string":
		return true
	}
	return strings.HasSuffix(key, "_id")
}

// normalize replaces volatile values (ids, uuids, times, random tokens,
// keys and DKIM material) with placeholders and re-indents out.
func normalize(t *testing.T, out string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				x[k] = walk(k, val)
			}
			return x
		case []any:
			for i, val := range x {
				x[i] = walk(key, val)
			}
			return x
		case string:
			switch {
			case volatile(key):
				return "<" + key + ">"
			case uuidRE.MatchString(x):
				return "<uuid>"
			case strings.HasPrefix(x, "v=DKIM1;"):
				return "<dkim record>"
			}
			x = selectorRE.ReplaceAllString(x, "postal-<selector>._domainkey")
			return verifyRE.ReplaceAllString(x, "postal-verification <token>")
		case float64:
			if volatile(key) {
				return "<" + key + ">"
			}
		}
		return v
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(walk("", v)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
