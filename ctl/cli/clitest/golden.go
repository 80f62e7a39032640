package clitest

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
)

// update is the -update flag of every test binary that imports clitest: it
// rewrites golden files instead of comparing with them.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Step is one command line of a scenario: it must exit with Code; a failing
// step's error must contain ErrText; stdout must contain Out; a step with
// JSON set adds its normalised --json output to the scenario's transcript.
type Step struct {
	Args    []string
	Code    int
	ErrText string
	Out     string
	JSON    bool
}

// Steps runs steps in order and returns the transcript of the JSON ones,
// normalised with Volatile.
func (e *Env) Steps(t *testing.T, newCmd func(*cli.Factory) *cobra.Command, steps []Step) string {
	t.Helper()
	var b strings.Builder
	for _, s := range steps {
		args := s.Args
		if s.JSON {
			args = append(append([]string{}, args...), "--json")
		}
		res := e.Run(t, newCmd, args...)
		if res.Code != s.Code {
			t.Fatalf("%v: exit %d, want %d (err %v, out %q)", args, res.Code, s.Code, res.RunErr, res.Out)
		}
		if s.ErrText != "" && (res.RunErr == nil || !strings.Contains(res.RunErr.Error(), s.ErrText)) {
			t.Fatalf("%v: error %v, want one containing %q", args, res.RunErr, s.ErrText)
		}
		if !strings.Contains(res.Out, s.Out) {
			t.Fatalf("%v: output %q does not contain %q", args, res.Out, s.Out)
		}
		if s.JSON {
			b.WriteString("$ " + strings.Join(s.Args, " ") + "\n" + Normalize(t, res.Out, Volatile))
		}
	}
	return b.String()
}

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$`)
	selectorRE = regexp.MustCompile(`postal-[A-Z]{6}\._domainkey`)
	verifyRE   = regexp.MustCompile(`postal-verification [0-9a-f]{32}`)
)

// Volatile reports the JSON keys of the mail model whose values differ
// between runs (ids, uuids, times, random tokens and keys).
func Volatile(key string) bool {
	switch key {
	case "id", "uuid", "created_at", "updated_at", "verified_at", "dns_checked_at", "timestamp", "keep_until",
		"last_used_at", "suspended_at", "token", "verification_token", "key", "key_hint", "dkim_identifier_string":
		return true
	}
	return strings.HasSuffix(key, "_id")
}

// Normalize parses out as JSON, replaces the value of every key volatile
// reports with "<key>", every uuid with "<uuid>" and DKIM material and
// verification tokens with placeholders, and re-indents it.
func Normalize(t *testing.T, out string, volatile func(key string) bool) string {
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
		}
		if volatile(key) {
			return "<" + key + ">"
		}
		if x, ok := v.(string); ok {
			switch {
			case uuidRE.MatchString(x):
				return "<uuid>"
			case strings.HasPrefix(x, "v=DKIM1;"):
				return "<dkim record>"
			}
			x = selectorRE.ReplaceAllString(x, "postal-<selector>._domainkey")
			return verifyRE.ReplaceAllString(x, "postal-verification <token>")
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

// Golden compares got with testdata/name.golden, or rewrites that file when
// the test runs with -update.
func Golden(t *testing.T, name, got string) {
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
