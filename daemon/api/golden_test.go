package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// normalise replaces what changes between runs (time, ids, tokens, UUIDs,
// dates, MIME boundaries, the raw message's Base64) with placeholders;
// numbers become strings ("ID"), so a number's type is not checked here
// (the contract tests check types).
func normalise(b []byte) []byte {
	for _, r := range []struct{ re, with string }{
		{`"time":[0-9.]+`, `"time":"T"`},
		{`"(id|bounce_for_id)":[1-9][0-9]*`, `"$1":"ID"`},
		{`"token":"[a-zA-Z0-9]{16}"`, `"token":"TOKEN"`},
		{`"timestamp":[0-9.]+`, `"timestamp":"TS"`},
		{`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`, `UUID`},
		{`[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000`, `DATE`},
		{`--==_mimepart_[0-9a-f]+`, `BOUNDARY`},
		{`"raw_message":"[^"]*"`, `"raw_message":"BASE64"`},
		{`"size":"\d+"`, `"size":"SIZE"`},
	} {
		b = regexp.MustCompile(r.re).ReplaceAll(b, []byte(r.with))
	}
	return b
}

// golden compares whole answers (normalised) with testdata/NAME.golden;
// the same file serves SQLite and PostgreSQL.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, normalise(bytes.Clone(got)), "", "  "); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, got)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs:\n%s", path, pretty.Bytes())
	}
}

// Whole answers, byte for byte after normalising: send/message, every
// expansion of messages/message, an error and a parameter-error.
func TestGoldenAnswers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := e.postJSON("send/message", `{"to": ["Bob <bob@dest.test>"], "from": "Alice <alice@example.com>", "subject": "Golden",
			"plain_body": "Plain body", "html_body": "<p>HTML body</p>", "tag": "golden", "headers": {"X-One": "1"},
			"attachments": [{"name": "a.txt", "content_type": "text/plain", "data": "YXR0YWNoZWQ="}]}`)
		golden(t, "send_message", a.Raw)
		var d struct {
			Data struct {
				Messages map[string]struct{ ID int64 }
			}
		}
		if err := json.Unmarshal(a.Raw, &d); err != nil {
			t.Fatal(err)
		}
		id := d.Data.Messages["bob@dest.test"].ID
		golden(t, "message_all_expansions", e.postJSON("messages/message", map[string]any{"id": id, "_expansions": true}).Raw)
		golden(t, "deliveries_none", e.postJSON("messages/deliveries", map[string]any{"id": id}).Raw)
		golden(t, "error_no_recipients", e.postJSON("send/message", map[string]any{}).Raw)
		golden(t, "parameter_error_id", e.postJSON("messages/message", map[string]any{}).Raw)
	})
}
