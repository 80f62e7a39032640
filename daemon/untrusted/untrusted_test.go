package untrusted_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/untrusted"
)

func TestText(t *testing.T) {
	euro := "\u20ac"     // 3 bytes
	clef := "\U0001d11e" // 4 bytes
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"valid text unchanged", "250 2.0.0 Ok: queued as 4F2B", 512, "250 2.0.0 Ok: queued as 4F2B"},
		{"valid UTF-8 unchanged", "250 Nachricht für Empfänger " + euro + clef, 512, "250 Nachricht für Empfänger " + euro + clef},
		{"Latin-1 read as ISO-8859-1", "250 2.0.0 Nachricht f\xfcr Empf\xe4nger", 512, "250 2.0.0 Nachricht für Empfänger"},
		{"Latin-1 C1 range replaced", "a\x80b\x9fc", 512, "a\uFFFDb\uFFFDc"},
		{"NUL replaced", "250 ok\x00tail", 512, "250 ok\uFFFDtail"},
		{"other C0 and DEL replaced", "a\x01b\x1bc\x7fd", 512, "a\uFFFDb\uFFFDc\uFFFDd"},
		{"tab kept", "a\tb", 512, "a\tb"},
		{"line breaks become spaces", "line one\r\nline two\nthree", 512, "line one  line two three"},
		{"C1 encoded in UTF-8 replaced", "a\u0085b", 512, "a\uFFFDb"},
		{"U+FFFD itself kept", "a\uFFFDb", 512, "a\uFFFDb"},
		{"cut inside a 2-byte sequence", "abcü", 4, "abc"},
		{"cut after a 2-byte sequence", "abcü", 5, "abcü"},
		{"cut inside a 3-byte sequence (1 byte in)", "ab" + euro, 3, "ab"},
		{"cut inside a 3-byte sequence (2 bytes in)", "ab" + euro, 4, "ab"},
		{"cut inside a 4-byte sequence", "a" + clef, 4, "a"},
		{"cut after a 4-byte sequence", "a" + clef + "b", 5, "a" + clef},
		{"cut where Latin-1 expands to 2 bytes", "ab\xfc", 3, "ab"},
		{"cut where a replacement does not fit", "ab\x00", 4, "ab"},
		{"plain cut", "abcdef", 3, "abc"},
		{"truncated UTF-8 from the peer", "ab\xe2\x82", 512, "abâ\uFFFD"},
		{"max 0", "abc", 0, ""},
		{"max negative", "abc", -1, ""},
		{"empty", "", 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := untrusted.Text(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("Text(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"multi-line kept", "first\nsecond\tx", 512, "first\nsecond\tx"},
		{"CR becomes a space", "first\r\nsecond", 512, "first \nsecond"},
		{"NUL replaced", "a\x00\nb", 512, "a\uFFFD\nb"},
		{"Latin-1", "f\xfcr\nEmpf\xe4nger", 512, "für\nEmpfänger"},
		{"cut", "ab\ncdé", 6, "ab\ncd"},
		{"max 0", "a\nb", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := untrusted.Lines(tt.in, tt.max); got != tt.want {
				t.Errorf("Lines(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

// TestTextNoCopy checks the documented fast path: clean text is returned as
// it is, without allocating.
func TestTextNoCopy(t *testing.T) {
	s := strings.Repeat("250 2.0.0 Ok: queued für Empfänger ", 10)
	if n := testing.AllocsPerRun(100, func() { _ = untrusted.Text(s, 1000) }); n != 0 {
		t.Errorf("Text allocated %v times for clean text", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = untrusted.Text(s, 100) }); n != 0 {
		t.Errorf("Text allocated %v times to cut clean text", n)
	}
}

// check asserts the package contract on out, the result of f(in, max).
func check(t *testing.T, fn string, in string, max int, out string, keepLF bool) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s(%q, %d) = %q: not valid UTF-8", fn, in, max, out)
	}
	if len(out) > max && !(max <= 0 && out == "") {
		t.Fatalf("%s(%q, %d) = %q: %d bytes, more than max", fn, in, max, out, len(out))
	}
	for _, r := range out {
		if (r < 0x20 && r != '\t' && !(keepLF && r == '\n')) || (r >= 0x7f && r <= 0x9f) {
			t.Fatalf("%s(%q, %d) = %q: holds control %U", fn, in, max, out, r)
		}
	}
	if utf8.ValidString(in) && !strings.ContainsFunc(in, func(r rune) bool {
		return (r < 0x20 && r != '\t' && !(keepLF && r == '\n')) || (r >= 0x7f && r <= 0x9f)
	}) && !strings.HasPrefix(in, out) {
		t.Fatalf("%s(%q, %d) = %q: clean input is not kept as a prefix", fn, in, max, out)
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{"", "250 ok", "f\xfcr", "a\x00b", "ab\xe2\x82", "\U0001d11e\u20acü", "x\r\ny\n", "\x85\u0085"} {
		f.Add(s, 5)
		f.Add(s, 512)
	}
	f.Fuzz(func(t *testing.T, in string, max int) {
		max %= 1 << 16
		out := untrusted.Text(in, max)
		check(t, "Text", in, max, out, false)
		if again := untrusted.Text(out, max); again != out {
			t.Fatalf("Text is not idempotent: %q then %q", out, again)
		}
		lines := untrusted.Lines(in, max)
		check(t, "Lines", in, max, lines, true)
		if strings.ReplaceAll(lines, "\n", " ") != out {
			t.Fatalf("Lines %q and Text %q differ other than in line feeds", lines, out)
		}
	})
}

// BenchmarkText measures a typical 2.0.0 reply: clean (the fast path, no
// copy), Latin-1 (rebuilt) and with a NUL byte.
func BenchmarkText(b *testing.B) {
	for _, c := range []struct{ name, in string }{
		{"clean", "250 2.0.0 Ok: queued as 4F2B1C0A7D for <someone@example.org> (Nachricht für Empfänger)"},
		{"latin1", "250 2.0.0 Ok: queued as 4F2B1C0A7D for <someone@example.org> (Nachricht f\xfcr Empf\xe4nger)"},
		{"nul", "250 2.0.0 Ok: queued as 4F2B1C0A7D for <someone@example.org> (Nachricht\x00 für Empfänger)"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.in)))
			b.ReportAllocs()
			for b.Loop() {
				_ = untrusted.Text(c.in, 512)
			}
		})
	}
}

func TestIsASCII(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{{"", true}, {"bob@example.com", true}, {"\x7f\t\r\n", true}, {"Ünï@dest.test", false}, {"a\x80", false}, {"\xff", false}} {
		if got := untrusted.IsASCII(c.s); got != c.want {
			t.Errorf("IsASCII(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
