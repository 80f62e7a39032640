package dsn_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/dsn"
)

// nest wraps the entity inner (header and body) in levels of multipart/mixed.
func nest(inner []byte, levels int) []byte {
	var b bytes.Buffer
	b.Grow(len(inner) + levels*80)
	for i := levels; i > 0; i-- {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.Write(inner)
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "\r\n--b%d--\r\n", i)
	}
	return b.Bytes()
}

// reportEntity is a multipart/report entity (no message header fields).
func reportEntity(filler int) []byte {
	return []byte("Content-Type: multipart/report; report-type=delivery-status; boundary=\"rep\"\r\n\r\n" +
		"--rep\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("filler text of the human part\r\n", filler/31) +
		"--rep\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n" +
		"Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--rep--\r\n")
}

func TestParseNestingIsBounded(t *testing.T) {
	tests := []struct {
		levels int
		found  bool
	}{
		// The multipart/report is at depth levels, its delivery-status
		// part one deeper; the walk visits entities down to depth 8.
		{0, true}, {1, true}, {7, true},
		{8, false}, {9, false}, {4000, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.levels), func(t *testing.T) {
			raw := append([]byte("From: MAILER-DAEMON@mx.example.org\r\nMIME-Version: 1.0\r\n"), nest(reportEntity(0), tt.levels)...)
			rep, err := dsn.Parse(raw)
			switch {
			case tt.found && (err != nil || len(rep.Recipients) != 1 || rep.Recipients[0].Address != "bob@example.org"):
				t.Errorf("Parse = %+v, %v; want bob's report", rep, err)
			case !tt.found && !errors.Is(err, dsn.ErrNotDSN):
				t.Errorf("Parse error = %v, want ErrNotDSN", err)
			}
		})
	}
}

func TestParseStopsAfterMaxParts(t *testing.T) {
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n")
	for range 150 {
		b.WriteString("--x\r\nContent-Type: text/plain\r\n\r\nnot it\r\n")
	}
	b.WriteString("--x\r\n")
	b.Write(reportEntity(0))
	b.WriteString("--x--\r\n")
	if _, err := dsn.Parse([]byte(b.String())); !errors.Is(err, dsn.ErrNotDSN) {
		t.Errorf("report after 150 parts: %v, want ErrNotDSN", err)
	}
}

// TestParseFieldsAreSafe: a report full of Latin-1, NUL and over-long fields
// yields valid UTF-8, control-free, bounded fields.
func TestParseFieldsAreSafe(t *testing.T) {
	raw := "From: MAILER-DAEMON@mx.example.org\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"rep\"\r\n\r\n" +
		"--rep\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\x00.example.org\r\n\r\n" +
		"Final-Recipient: utf-8; b\\x{0}ob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Remote-MTA: dns; mx.\xfc.example\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 Empf\xe4nger unbekannt " + strings.Repeat("\xe4", 3000) + "\r\n\r\n" +
		"--rep\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <id\x01@example.com>\r\nX-Postal-MsgID: tok\xff\r\n\r\n--rep--\r\n"
	rep, err := dsn.Parse([]byte(raw))
	if err != nil || len(rep.Recipients) != 1 {
		t.Fatalf("Parse = %+v, %v", rep, err)
	}
	r := rep.Recipients[0]
	checks := []struct{ name, got, want string }{
		{"ReportingMTA", rep.ReportingMTA, "mx\uFFFD.example.org"},
		{"Address", r.Address, "b\uFFFDob@example.org"},
		{"RemoteMTA", r.RemoteMTA, "mx.ü.example"},
		{"OriginalMessageID", rep.OriginalMessageID, "id\uFFFD@example.com"},
		{"PostalMessageID", rep.PostalMessageID, "tokÿ"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(r.DiagnosticCode, "smtp; 550 5.1.1 Empfänger unbekannt ää") || len(r.DiagnosticCode) > 2048 ||
		!utf8.ValidString(r.DiagnosticCode) {
		t.Errorf("DiagnosticCode = %q... (%d bytes)", r.DiagnosticCode[:40], len(r.DiagnosticCode))
	}
}

// unsafeField reports the first field of rep that is not valid, control-free UTF-8.
func unsafeField(rep *dsn.Report) string {
	fields := map[string]string{"ReportType": rep.ReportType, "ReportingMTA": rep.ReportingMTA,
		"OriginalMessageID": rep.OriginalMessageID, "PostalMessageID": rep.PostalMessageID}
	for i, r := range rep.Recipients {
		for k, v := range map[string]string{"Address": r.Address, "Action": r.Action, "Status": r.Status,
			"DiagnosticCode": r.DiagnosticCode, "RemoteMTA": r.RemoteMTA} {
			fields[fmt.Sprintf("Recipients[%d].%s", i, k)] = v
		}
	}
	for k, v := range fields {
		if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return k
		}
	}
	return ""
}

// FuzzParseNested walks arbitrary messages, wrapped in up to 63 levels of
// multipart nesting. Parse must not panic, and what it returns is safe text.
// Seeds: testdata/*.eml and testdata/fuzz/FuzzParseNested.
func FuzzParseNested(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, uint8(0))
	}
	f.Fuzz(func(t *testing.T, raw []byte, levels uint8) {
		if levels%64 > 0 {
			raw = nest(raw, int(levels%64))
		}
		rep, err := dsn.Parse(raw)
		if err != nil {
			return
		}
		if k := unsafeField(rep); k != "" {
			t.Fatalf("%s is not safe text: %+v", k, rep)
		}
	})
}

// BenchmarkParseNesting parses messages of about the same size (320 KiB) whose
// report sits under 10 to 4,000 levels of multipart nesting, and a 14 MiB one
// under 4,000 levels. ns/byte stays flat: nesting beyond the cap costs no
// more than the cap, and the size does not change the cost of a byte.
func BenchmarkParseNesting(b *testing.B) {
	cases := []struct{ levels, size int }{{10, 320 << 10}, {100, 320 << 10}, {1000, 320 << 10}, {4000, 320 << 10}, {4000, 14 << 20}}
	for _, c := range cases {
		shell := nest(nil, c.levels)
		raw := append([]byte("From: MAILER-DAEMON@mx.example.org\r\nMIME-Version: 1.0\r\n"), nest(reportEntity(c.size-len(shell)), c.levels)...)
		b.Run(fmt.Sprintf("levels=%d/size=%dKiB", c.levels, c.size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				_, _ = dsn.Parse(raw)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(raw)), "ns/byte")
		})
	}
}
