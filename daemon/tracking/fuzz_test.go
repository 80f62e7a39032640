package tracking

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzRewrite checks that any input is rewritten without panicking, that
// nothing changes when no link or pixel was written, that every URL asked
// for is counted, and that the output's text stays valid when the input was.
func FuzzRewrite(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o := testOptions()
		urls := URLs(in, o)
		out, res := Rewrite(in, o, tokensFor(urls))
		if res.Links == 0 && res.Images == 0 && len(out) > len(in)+len("+notrack")*len(in) {
			t.Fatalf("grew without links: %d -> %d", len(in), len(out))
		}
		if res.Missing != 0 {
			t.Fatalf("missing %d with every token", res.Missing)
		}
		if res.Links == 0 && res.Images == 0 && !bytes.Contains(in, []byte("+notrack")) && !bytes.Equal(out, in) {
			t.Fatalf("changed without links or pixel:\n%q\n%q", in, out)
		}
		if utf8.Valid(in) && !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 out of valid input")
		}
		again, _ := Rewrite(in, o, tokensFor(urls))
		if !bytes.Equal(again, out) {
			t.Fatal("not deterministic")
		}
	})
}

// FuzzDecodeQP checks the quoted-printable decoder against the standard
// library's on every input the library accepts.
func FuzzDecodeQP(f *testing.F) {
	for _, s := range []string{"a=3Db=\r\nc", "x  \r\ny\t\n", "=E9t=C3=A9", "bad=ZZ", "=\n=", "a=20\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if got := decodeQP(in); !bytes.Equal(got, want) {
			t.Fatalf("decodeQP(%q) = %q, library says %q", in, got, want)
		}
	})
}
