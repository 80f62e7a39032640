package dsn_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/dsn"
)

// textGolden is what a golden file records of a parsed plain-text bounce.
type textGolden struct {
	Format            string            `json:"format"`
	Recipients        []recipientGolden `json:"recipients"`
	OriginalMessageID string            `json:"original_message_id"`
	PostalMessageID   string            `json:"postal_message_id"`
}

type recipientGolden struct {
	Address        string    `json:"address"`
	Action         string    `json:"action"`
	Status         string    `json:"status"`
	DiagnosticCode string    `json:"diagnostic_code"`
	Class          dsn.Class `json:"class"`
}

// TestParseTextBounces reads each non-standard bounce in testdata/text and
// compares what Parse found (format, failed recipients, statuses,
// diagnostics, classes, the original's IDs) with its .golden file
// (refreshed by -update).
func TestParseTextBounces(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "text", "*.eml"))
	if err != nil || len(files) < 6 {
		t.Fatalf("fixtures: %v, %v", files, err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := dsn.Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			g := textGolden{Format: rep.Format, OriginalMessageID: rep.OriginalMessageID, PostalMessageID: rep.PostalMessageID}
			for _, r := range rep.Recipients {
				g.Recipients = append(g.Recipients, recipientGolden{r.Address, r.Action, r.Status, r.DiagnosticCode, dsn.Classify(r)})
			}
			got, _ := json.MarshalIndent(g, "", "  ")
			got = append(got, '\n')
			path := strings.TrimSuffix(file, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s:\n got %s\nwant %s", name, got, want)
			}
		})
	}
}

// TestParseTextFormats pins the format each fixture is read as: the golden
// files could be refreshed with a wrong reading, this cannot.
func TestParseTextFormats(t *testing.T) {
	want := map[string]struct {
		format string
		rcpts  []string
		class  dsn.Class
	}{
		"qmail":    {dsn.FormatQmail, []string{"bob@example.org", "carol@example.org"}, dsn.Hard},
		"exim":     {dsn.FormatExim, []string{"dave@example.net"}, dsn.Hard},
		"postfix":  {dsn.FormatPostfix, []string{"erin@example.com", "frank@example.com"}, dsn.Soft},
		"exchange": {dsn.FormatExchange, []string{"grace@contoso.example"}, dsn.Hard},
		"gmail":    {dsn.FormatGmail, []string{"heidi@gmail.example"}, dsn.Hard},
		"yahoo":    {dsn.FormatYahoo, []string{"ivan@yahoo.example"}, dsn.Hard},
	}
	for name, w := range want {
		raw, err := os.ReadFile(filepath.Join("testdata", "text", name+".eml"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := dsn.Parse(raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var got []string
		for _, r := range rep.Recipients {
			got = append(got, r.Address)
		}
		if rep.Format != w.format || strings.Join(got, ",") != strings.Join(w.rcpts, ",") {
			t.Errorf("%s: format %q recipients %v, want %q %v", name, rep.Format, got, w.format, w.rcpts)
			continue
		}
		if c := dsn.Classify(rep.Recipients[0]); c != w.class {
			t.Errorf("%s: first recipient %+v classified %s, want %s", name, rep.Recipients[0], c, w.class)
		}
	}
}

func TestParseTextNotABounce(t *testing.T) {
	for _, body := range []string{
		"Hello Alice,\r\n\r\nsee you at <bob@example.org>: tomorrow.\r\n",
		"",
		"This is the mail system at the office. Nothing failed.\r\n",
	} {
		raw := "From: bob@example.org\r\nSubject: hi\r\n\r\n" + body
		if _, err := dsn.Parse([]byte(raw)); err != dsn.ErrNotDSN {
			t.Errorf("Parse(%q) error = %v, want ErrNotDSN", body, err)
		}
	}
}

func TestParseTextDelayed(t *testing.T) {
	raw := "From: MAILER-DAEMON@mx.example.net\r\nSubject: Warning: message delayed\r\n\r\n" +
		"This message was created automatically by mail delivery software.\r\n\r\n" +
		"A message that you sent has not yet been delivered to one or more of its\r\n" +
		"recipients after more than 24 hours on the queue on mx.example.net.\r\n\r\n" +
		"  judy@example.net\r\n    host mx.example.net [203.0.113.9]: 451 4.3.0 Temporary lookup failure\r\n\r\n" +
		"No action is required on your part. Delivery attempts will continue for some time.\r\n"
	rep, err := dsn.Parse([]byte(raw))
	if err != nil || len(rep.Recipients) != 1 {
		t.Fatalf("Parse = %+v, %v", rep, err)
	}
	r := rep.Recipients[0]
	if r.Action != dsn.ActionDelayed || r.Status != "4.3.0" || dsn.Classify(r) != dsn.Soft {
		t.Errorf("recipient = %+v (%s), want delayed 4.3.0 soft", r, dsn.Classify(r))
	}
}

// TestParseTextIsBounded: a text bounce naming thousands of recipients on
// megabytes of text yields at most 100 recipients with bounded
// diagnostics.
func TestParseTextIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: failure notice\r\n\r\nHi. This is the qmail-send program at mx.example.org.\r\n")
	for i := range 5000 {
		b.WriteString("<u")
		b.WriteString(strings.Repeat("x", i%50))
		b.WriteString("@example.org>:\r\n")
		b.WriteString(strings.Repeat("550 5.1.1 no such user here ", 200))
		b.WriteString("\r\n")
	}
	rep, err := dsn.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rep.Recipients); n == 0 || n > 100 {
		t.Fatalf("%d recipients, want 1..100", n)
	}
	for _, r := range rep.Recipients {
		if len(r.DiagnosticCode) > 2048 || !utf8.ValidString(r.DiagnosticCode) {
			t.Fatalf("diagnostic of %d bytes", len(r.DiagnosticCode))
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		r    dsn.Recipient
		want dsn.Class
	}{
		{"user unknown", dsn.Recipient{Action: "failed", Status: "5.1.1"}, dsn.Hard},
		{"bad domain", dsn.Recipient{Action: "failed", Status: "5.1.2"}, dsn.Hard},
		{"null MX", dsn.Recipient{Action: "failed", Status: "5.1.10"}, dsn.Hard},
		{"bad sender", dsn.Recipient{Action: "failed", Status: "5.1.7"}, dsn.Soft},
		{"disabled", dsn.Recipient{Action: "failed", Status: "5.2.1"}, dsn.Hard},
		{"mailbox full", dsn.Recipient{Action: "failed", Status: "5.2.2"}, dsn.Soft},
		{"too big", dsn.Recipient{Action: "failed", Status: "5.2.3"}, dsn.Soft},
		{"unroutable", dsn.Recipient{Action: "failed", Status: "5.4.4"}, dsn.Hard},
		{"spam block", dsn.Recipient{Action: "failed", Status: "5.7.1", DiagnosticCode: "smtp; 550 5.7.1 Recipient address rejected: Access denied"}, dsn.Soft},
		{"temporary", dsn.Recipient{Action: "failed", Status: "4.4.7"}, dsn.Soft},
		{"delayed", dsn.Recipient{Action: "delayed", Status: "5.1.1"}, dsn.Soft},
		{"exim 5.0.0 with detail", dsn.Recipient{Action: "failed", Status: "5.0.0", DiagnosticCode: "smtp; 550 5.1.1 <a@b.example>: unknown"}, dsn.Hard},
		{"5.0.0 user unknown", dsn.Recipient{Action: "failed", Status: "5.0.0", DiagnosticCode: "smtp; 550 User unknown"}, dsn.Hard},
		{"5.0.0 blocked", dsn.Recipient{Action: "failed", Status: "5.0.0", DiagnosticCode: "smtp; 550 Message rejected as spam"}, dsn.Soft},
		{"553", dsn.Recipient{Action: "failed", DiagnosticCode: "smtp; 553 sorry, that domain isn't in my list"}, dsn.Hard},
		{"552 no status", dsn.Recipient{Action: "failed", DiagnosticCode: "smtp; 552 Quota exceeded"}, dsn.Soft},
		{"nothing", dsn.Recipient{Action: "failed"}, dsn.Soft},
		{"4xx diag", dsn.Recipient{Action: "failed", DiagnosticCode: "smtp; 450 try later"}, dsn.Soft},
	}
	for _, tt := range tests {
		if got := dsn.Classify(tt.r); got != tt.want {
			t.Errorf("%s: Classify(%+v) = %s, want %s", tt.name, tt.r, got, tt.want)
		}
	}
}

// FuzzParseText feeds arbitrary text to the plain-text reader behind each
// format's phrase: no panic, bounded, valid fields.
func FuzzParseText(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "text", "*.eml"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Subject: x\r\n\r\nHi. This is the qmail-send program\r\n<a@b.c>:\r\n550 5.1.1 x\r\n---\r\n\r\nMessage-ID: <x@y>\r\n"))
	f.Add([]byte("\r\n\r\nyour message wasn\u2019t delivered to <<a@b.c>>. 5.1.1\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, err := dsn.Parse(raw)
		if err != nil {
			return
		}
		if len(rep.Recipients) > 100 && rep.Format != dsn.FormatRFC3464 {
			t.Fatalf("%d recipients", len(rep.Recipients))
		}
		for _, r := range rep.Recipients {
			if !utf8.ValidString(r.Address) || !utf8.ValidString(r.DiagnosticCode) || len(r.DiagnosticCode) > 2048 {
				t.Fatalf("unsafe recipient %+v", r)
			}
			_ = dsn.Classify(r)
		}
	})
}

// BenchmarkParse reads each format's fixture: the plain-text reading against
// the RFC 3464 one (postfix.eml in testdata).
func BenchmarkParse(b *testing.B) {
	files := []string{filepath.Join("testdata", "postfix.eml")}
	more, _ := filepath.Glob(filepath.Join("testdata", "text", "*.eml"))
	for _, file := range append(files, more...) {
		raw, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(filepath.Dir(file)), "testdata") + filepath.Base(file)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := dsn.Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
