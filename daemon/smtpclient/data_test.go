package smtpclient

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func dataWire(data string) string {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeData(w, []byte(data))
	_ = w.Flush()
	return b.String()
}

func TestWriteData(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty message is just the terminator", "", ".\r\n"},
		{"CRLF kept", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
		{"bare CR", "a\rb", "a\r\nb\r\n.\r\n"},
		{"CR CR LF", "a\r\r\n", "a\r\n\r\n.\r\n"},
		{"final line completed", "a\r\nb", "a\r\nb\r\n.\r\n"},
		{"leading dot doubled", ".a\r\n", "..a\r\n.\r\n"},
		{"lone dot line doubled", "a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n"},
		{"dot after bare CR doubled", "a\r.b", "a\r\n..b\r\n.\r\n"},
		{"inner dots untouched", "a.b.\r\n", "a.b.\r\n.\r\n"},
		{"8-bit bytes untouched", "caf\xc3\xa9\n", "caf\xc3\xa9\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dataWire(tt.in); got != tt.want {
				t.Errorf("writeData(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHas8bit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", false}, {"plain ascii text, longer than eight bytes", false},
		{"\x80", true}, {"0123456789abcdef\xff", true}, {"01234567\xc3\xa9", true},
	} {
		if got := has8bit([]byte(tt.in)); got != tt.want {
			t.Errorf("has8bit(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// unstuff undoes the transparency procedure of RFC 5321 section 4.5.2 on a
// DATA payload, returning the message and whether it ended properly.
func unstuff(wire string) (string, bool) {
	body, ok := strings.CutSuffix(wire, ".\r\n")
	if !ok || (body != "" && !strings.HasSuffix(body, "\r\n")) {
		return "", false
	}
	lines := strings.SplitAfter(body, "\r\n")
	var b strings.Builder
	for _, l := range lines {
		if l == ".\r\n" {
			return "", false // an end-of-data line before the end
		}
		b.WriteString(strings.TrimPrefix(l, "."))
	}
	return b.String(), true
}

// FuzzWriteData checks that the DATA payload always has CRLF line endings
// only, a single end-of-data line, and un-stuffs to the CRLF-normalised input.
func FuzzWriteData(f *testing.F) {
	for _, s := range []string{"", "a\r\n", ".\n", "a\r.b", "\r\r\n.", "x\n.\r\n..\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		wire := dataWire(in)
		stripped := strings.ReplaceAll(wire, "\r\n", "")
		if strings.ContainsAny(stripped, "\r\n") {
			t.Fatalf("bare CR or LF in %q", wire)
		}
		got, ok := unstuff(wire)
		if !ok {
			t.Fatalf("payload %q is not properly terminated", wire)
		}
		want := strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(in)
		if want != "" && !strings.HasSuffix(want, "\r\n") {
			want += "\r\n"
		}
		if got != want {
			t.Fatalf("un-stuffed %q, want %q", got, want)
		}
	})
}
