package mailheader_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/mailheader"
)

type field struct{ name, value string }

func fieldsOf(msg []byte) []field {
	h := mailheader.Parse(msg)
	var out []field
	for _, f := range h.Fields() {
		out = append(out, field{f.Name, h.Value(f)})
	}
	return out
}

func TestParseWhereTheHeaderEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msg    string
		fields []field
		header string // msg[:End]
		body   string // msg[BodyStart:]
		lines  int
	}{
		{
			name:   "fields, a folded value and the empty line",
			msg:    "From: a@example.com\r\nSubject: one\r\n two\r\n\r\nbody\r\n",
			fields: []field{{"From", "a@example.com"}, {"Subject", "one two"}},
			header: "From: a@example.com\r\nSubject: one\r\n two\r\n",
			body:   "body\r\n",
			lines:  3,
		},
		{
			name:   "bare line feeds and white space around values",
			msg:    "To: b@example.com\nX-A:  spaced \t\n\nbody",
			fields: []field{{"To", "b@example.com"}, {"X-A", "spaced"}},
			header: "To: b@example.com\nX-A:  spaced \t\n",
			body:   "body",
			lines:  2,
		},
		{
			name:   "a message that is all header, without a final line end",
			msg:    "Subject: only",
			fields: []field{{"Subject", "only"}},
			header: "Subject: only",
			lines:  1,
		},
		{
			name:   "a line that is not a field is the first line of the body",
			msg:    "Subject: x\r\nthis is body text\r\nFrom: not-a-header@example.com\r\n",
			fields: []field{{"Subject", "x"}},
			header: "Subject: x\r\n",
			body:   "this is body text\r\nFrom: not-a-header@example.com\r\n",
			lines:  1,
		},
		{
			name:   "a continuation before any field is body",
			msg:    " leading space\r\nFrom: x@example.com\r\n",
			body:   " leading space\r\nFrom: x@example.com\r\n",
			header: "",
		},
		{
			name:   "obsolete white space before the colon, tabs in folding",
			msg:    "Subject \t: a\r\n\tb\r\nX:\r\n\r\n",
			fields: []field{{"Subject", "a\tb"}, {"X", ""}},
			header: "Subject \t: a\r\n\tb\r\nX:\r\n",
			lines:  3,
		},
		{
			name: "a name with a space inside is not a field",
			msg:  "Bad Name: x\r\n\r\n",
			body: "Bad Name: x\r\n\r\n",
		},
		{
			name:   "a line starting with CR that is not empty ends the block",
			msg:    "A: 1\r\n\rB: 2\r\n",
			fields: []field{{"A", "1"}},
			header: "A: 1\r\n",
			body:   "\rB: 2\r\n",
			lines:  1,
		},
		{
			name:   "a final partial line without its colon is body",
			msg:    "A: 1\r\nSubj",
			fields: []field{{"A", "1"}},
			header: "A: 1\r\n",
			body:   "Subj",
			lines:  1,
		},
		{
			name: "an empty colon name is not a field",
			msg:  ": x\r\n",
			body: ": x\r\n",
		},
		{
			name: "empty message",
		},
		{
			name: "an empty first line is the separator",
			msg:  "\r\nFrom: body@example.com\r\n",
			body: "From: body@example.com\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.msg)
			h := mailheader.Parse(msg)
			if got := fieldsOf(msg); fmt.Sprint(got) != fmt.Sprint(tc.fields) {
				t.Errorf("fields %q, want %q", got, tc.fields)
			}
			if got := tc.msg[:h.End()]; got != tc.header {
				t.Errorf("header block %q, want %q", got, tc.header)
			}
			if got := tc.msg[h.BodyStart():]; got != tc.body {
				t.Errorf("body %q, want %q", got, tc.body)
			}
			if h.Lines() != tc.lines {
				t.Errorf("%d lines, want %d", h.Lines(), tc.lines)
			}
		})
	}
}

func TestValuesFirstWithout(t *testing.T) {
	msg := []byte("From: A\r\n <a@x.test>\r\nX-Postal-MsgID: old\r\n  folded\r\nfrom: b@y.test\r\n\r\nFrom: body@z.test\r\nX-Postal-MsgID: body\r\n")
	h := mailheader.Parse(msg)
	if got := h.Values("FROM"); len(got) != 2 || got[0] != "A <a@x.test>" || got[1] != "b@y.test" {
		t.Errorf("Values = %q", got)
	}
	if got := h.First("x-postal-msgid"); got != "old  folded" {
		t.Errorf("First = %q", got)
	}
	if got := h.First("Absent"); got != "" {
		t.Errorf("First of an absent field = %q", got)
	}
	want := "From: A\r\n <a@x.test>\r\nfrom: b@y.test\r\n\r\nFrom: body@z.test\r\nX-Postal-MsgID: body\r\n"
	if got := string(h.Without("X-POSTAL-MSGID")); got != want {
		t.Errorf("Without = %q, want %q", got, want)
	}
	if got := h.Without("Absent"); &got[0] != &msg[0] {
		t.Error("Without an absent field copied the message")
	}
}

func TestLimits(t *testing.T) {
	folded := "Subject: x\r\n" + strings.Repeat(" y\r\n", 20) + "\r\nbody"
	for _, tc := range []struct {
		name string
		msg  string
		lim  mailheader.Limits
		over bool
	}{
		{"within both", folded, mailheader.Limits{MaxBytes: 1000, MaxLines: 21}, false},
		{"one line too many", folded, mailheader.Limits{MaxBytes: 1000, MaxLines: 20}, true},
		{"exactly the bytes", folded, mailheader.Limits{MaxBytes: 12 + 20*4}, false},
		{"one byte too many", folded, mailheader.Limits{MaxBytes: 12 + 20*4 - 1}, true},
		{"the body does not count", "A: 1\r\n\r\n" + strings.Repeat("x\r\n", 100), mailheader.Limits{MaxBytes: 6, MaxLines: 1}, false},
		{"a header without end counts to the end", "A: " + strings.Repeat("x", 100), mailheader.Limits{MaxBytes: 100}, true},
		{"zero limits are none", folded, mailheader.Limits{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mailheader.Parse([]byte(tc.msg)).Check(tc.lim)
			if (err != nil) != tc.over || err != nil && !errors.Is(err, mailheader.ErrTooLarge) {
				t.Errorf("Check = %v, want over=%v", err, tc.over)
			}
			s := mailheader.NewScanner(tc.lim)
			var serr error
			for i := 0; i < len(tc.msg) && serr == nil; i += 7 {
				_, serr = s.Write([]byte(tc.msg[i:min(i+7, len(tc.msg))]))
			}
			if serr == nil {
				serr = s.Close()
			}
			if (serr != nil) != tc.over {
				t.Errorf("Scanner = %v, want over=%v", serr, tc.over)
			}
		})
	}
}

func TestScannerStopsEarly(t *testing.T) {
	// A header bomb is refused as soon as the limit is passed, however much
	// more is coming.
	s := mailheader.NewScanner(mailheader.Limits{MaxBytes: 1 << 20, MaxLines: 10000})
	if _, err := s.Write([]byte("Subject: bomb\r\n")); err != nil {
		t.Fatal(err)
	}
	line := []byte(" x\r\n")
	n := 0
	for {
		n++
		if _, err := s.Write(line); err != nil {
			break
		}
		if n > 20000 {
			t.Fatal("no error after 20000 folded lines")
		}
	}
	if n != 10000 {
		t.Errorf("refused at folded line %d, want 10000 (the 10001st header line)", n)
	}
	// Once the header has ended nothing else is looked at.
	s = mailheader.NewScanner(mailheader.Limits{MaxBytes: 10})
	if _, err := s.Write([]byte("A: 1\r\n\r\n" + strings.Repeat("B: 2\r\n", 100))); err != nil || !s.Done() || s.End() != 6 || s.BodyStart() != 8 {
		t.Fatalf("err %v done %v end %d body %d", err, s.Done(), s.End(), s.BodyStart())
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"plain", 100, "plain"},
		{"a\x00b", 100, "ab"},
		{"bad \xff\xfe end", 100, "bad \uFFFD\uFFFD end"},
		{"héllo", 2, "h"},
		{"héllo", 3, "hé"},
		{"日本語", 7, "日本"},
		{"\xff\xff", 4, "\uFFFD"},
		{"anything", 0, ""},
		{strings.Repeat("\x00", 10) + "ok", 5, "ok"},
	} {
		got := mailheader.Clean(tc.in, tc.limit)
		if got != tc.want {
			t.Errorf("Clean(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

// FuzzParse checks the header parser's contract on any bytes: the fields
// tile the header block exactly, in order; Parse of the block alone finds
// the same fields; the body is untouched by Without; a Scanner fed the
// message in pieces agrees with Parse on End, BodyStart, Lines and limits;
// Clean always gives safe text.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"From: a@example.com\r\nSubject: x\r\n\r\nbody",
		"Subject: =?UTF-8?B?w6k=?=\r\n folded\r\n\r\n",
		"Message-ID: <x@y>\nFrom: \"A, B\" <a@b.c>, d@e.f\n\nbody",
		"\r\n",
		"no colon here\r\n",
		"From: <<<@@>>>\r\nSender: \xff\r\n",
		"X-Postal-MsgID: a\r\n b\r\nA : 1\r\n\r\nX-Postal-MsgID: body",
		"A: 1\r\n\rB: 2",
		" lead\r\n",
	} {
		f.Add([]byte(seed), uint8(3), uint16(40), uint8(2))
	}
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint8, maxBytes uint16, maxLines uint8) {
		h := mailheader.Parse(msg)
		end, body := h.End(), h.BodyStart()
		if end < 0 || end > body || body > len(msg) {
			t.Fatalf("end %d body %d outside the message (%d bytes)", end, body, len(msg))
		}
		if sep := string(msg[end:body]); sep != "" && sep != "\n" && sep != "\r\n" {
			t.Fatalf("separator %q", sep)
		}
		// The fields tile [0, End).
		prev := 0
		for _, fl := range h.Fields() {
			if fl.Start != prev || fl.Colon < fl.Start || fl.End <= fl.Colon || msg[fl.Colon] != ':' {
				t.Fatalf("field %+v does not follow %d in %q", fl, prev, msg)
			}
			if fl.Name == "" || strings.ContainsAny(fl.Name, ": \t\r\n") {
				t.Fatalf("bad field name %q", fl.Name)
			}
			if v := h.Value(fl); strings.ContainsAny(v, "\n") {
				t.Fatalf("value %q not unfolded", v)
			}
			prev = fl.End
		}
		if prev != end {
			t.Fatalf("fields end at %d, header at %d", prev, end)
		}
		// The block alone parses the same; so does block + separator.
		again := mailheader.Parse(msg[:end])
		if again.End() != end || len(again.Fields()) != len(h.Fields()) || again.Lines() != h.Lines() {
			t.Fatalf("reparsing the header block: end %d/%d fields %d/%d", again.End(), end, len(again.Fields()), len(h.Fields()))
		}
		// Without never touches the body, and leaves no such field.
		out := h.Without("X-Postal-MsgID")
		if !bytes.HasSuffix(out, msg[end:]) || len(mailheader.Parse(out).Values("x-postal-msgid")) != 0 {
			t.Fatalf("Without: %q -> %q", msg, out)
		}
		// A Scanner fed in pieces agrees.
		lim := mailheader.Limits{MaxBytes: int(maxBytes), MaxLines: int(maxLines)}
		s := mailheader.NewScanner(lim)
		step := int(chunk)%16 + 1
		var serr error
		for i := 0; i < len(msg) && serr == nil; i += step {
			_, serr = s.Write(msg[i:min(i+step, len(msg))])
		}
		if serr == nil {
			serr = s.Close()
		}
		if want := h.Check(lim); (serr != nil) != (want != nil) {
			t.Fatalf("Scanner says %v, Parse says %v (end %d, lines %d, %+v)", serr, want, end, h.Lines(), lim)
		}
		if serr == nil && (s.End() != end || s.BodyStart() != body || s.Lines() != h.Lines()) {
			t.Fatalf("Scanner end %d body %d lines %d, Parse %d %d %d", s.End(), s.BodyStart(), s.Lines(), end, body, h.Lines())
		}
		for _, v := range []string{h.First("Subject"), string(msg)} {
			c := mailheader.Clean(v, 20)
			if !utf8.ValidString(c) || strings.ContainsRune(c, 0) || len(c) > 20 {
				t.Fatalf("Clean(%q) = %q", v, c)
			}
		}
	})
}
