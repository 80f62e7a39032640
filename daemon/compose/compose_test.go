package compose_test

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/postalgo/postal/daemon/compose"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func ptr(s string) *string { return &s }

// boundaries returns deterministic boundaries for golden output.
func boundaries() func() string {
	n := 0
	return func() string { n++; return "b" + strconv.Itoa(n) }
}

var date = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// The layout Postal's mail gem produces, byte for byte our own: header
// order, multipart/mixed around multipart/alternative, attachment last.
func TestBuildGolden(t *testing.T) {
	cases := map[string]compose.Message{
		"full": {
			Received: "from api (192.0.2.1 [192.0.2.1]) by postal.test with HTTP; Fri, 04 Dec 2026 10:00:00 +0000",
			Date:     date, From: "Alice <alice@example.com>", Sender: "s@example.com", ReplyTo: "r@example.com",
			To: []string{"Bob <bob@dest.test>", "carol@dest.test"}, Cc: []string{"dan@dest.test"},
			MessageID: "11111111-2222-4333-8444-555555555555@rp.postal.test", Subject: "Héllo wörld",
			Plain: ptr("Line one\nLine two"), HTML: ptr("<p>Ünïcode</p>"),
			Attachments: []compose.Attachment{{Name: "report.pdf", ContentType: "application/pdf", Data: bytes.Repeat([]byte{0, 1, 2, 250}, 30)}},
			Headers:     []compose.Header{{Name: "X-Campaign", Value: "spring"}, {Name: "Subject", Value: "dropped"}, {Name: "Date", Value: "Mon, 01 Jan 2024 00:00:00 +0000"}},
			Boundary:    boundaries(),
		},
		"plain-only": {Date: date, From: "a@example.com", To: []string{"b@dest.test"}, MessageID: "x@rp.test", Plain: ptr("hi"), Boundary: boundaries()},
		"custom-to": {Date: date, From: "a@example.com", Cc: []string{"c@dest.test"}, MessageID: "x@rp.test", HTML: ptr("<b>x</b>"),
			Headers: []compose.Header{{Name: "To", Value: "Shown <shown@dest.test>"}, {Name: "Cc", Value: "dropped@dest.test"}}, Boundary: boundaries()},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := compose.Build(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".eml")
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
				t.Errorf("output differs from %s:\n%s", path, got)
			}
			checkWellFormed(t, got)
		})
	}
}

// A header value cannot add a field; long values fold within limits.
func TestBuildHeaderSafety(t *testing.T) {
	long := strings.Repeat("word ", 400)
	got, err := compose.Build(compose.Message{Date: date, From: "a@example.com\r\nBcc: x@evil.test", To: []string{"b@dest.test"},
		Subject: long + "\nX-Evil: 1", Plain: ptr("x"),
		Headers: []compose.Header{{Name: "X-Long", Value: strings.Repeat("y", 3000)}, {Name: "Bcc", Value: "hidden@evil.test"}}})
	if err != nil {
		t.Fatal(err)
	}
	head := string(got[:bytes.Index(got, []byte("\r\n\r\n"))])
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(line, "Bcc") || strings.HasPrefix(line, "X-Evil") {
			t.Errorf("injected field %q", line)
		}
	}
	checkWellFormed(t, got)
	if _, err := compose.Build(compose.Message{Headers: []compose.Header{{Name: "Bad Name", Value: "x"}}}); err == nil {
		t.Error("a field name with a space was accepted")
	}
}

// checkWellFormed: CRLF only, lines within 998 octets, and go-message
// reads every part.
func checkWellFormed(t *testing.T, b []byte) {
	t.Helper()
	for i, line := range bytes.Split(b, []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatalf("line %d has %d octets", i, len(line))
		}
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF", i)
		}
	}
	e, err := message.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		if mt, _, _ := part.Header.ContentType(); strings.HasPrefix(mt, "multipart/") {
			return nil // Walk reads its parts
		}
		_, err = io.Copy(io.Discard, part.Body)
		return err
	}); err != nil {
		t.Fatalf("walk: %v", err)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("Alice <a@example.com>", "Subject", "body", "X-H", "v", "file.bin", []byte{1, 2, 3})
	f.Add("Ünï <ü@example.com>", "Grüße\r\n", "\xff\xfe", "X", "\n\n", "", []byte{})
	f.Fuzz(func(t *testing.T, from, subject, body, hname, hvalue, fname string, data []byte) {
		m := compose.Message{Date: date, From: from, To: []string{from}, Subject: subject, Plain: &body, HTML: &body,
			Headers: []compose.Header{{Name: hname, Value: hvalue}}}
		if fname != "" {
			m.Attachments = []compose.Attachment{{Name: fname, ContentType: hvalue, Data: data}}
		}
		out, err := compose.Build(m)
		if err != nil {
			if compose.ValidFieldName(hname) {
				t.Fatalf("valid name %q refused: %v", hname, err)
			}
			return
		}
		checkWellFormed(t, out)
	})
}
