package tracking

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testOptions() Options {
	return Options{
		Scheme: "https", Host: "click.example.com", ServerToken: "abcdef", MessageToken: "MSGTOKEN00000001",
		TrackClicks: true, TrackLoads: true, Excluded: []string{"skip.example.org"},
	}
}

// tokensFor gives each URL a predictable token, as the store would.
func tokensFor(urls []string) map[string]string {
	m := make(map[string]string, len(urls))
	for i, u := range urls {
		m[u] = fmt.Sprintf("tok%013d", i)
	}
	return m
}

// TestGolden rewrites each testdata/*.eml and compares with its .golden
// (refresh with -update). The golden file starts with the URLs to track.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o := testOptions()
			urls := URLs(in, o)
			out, res := Rewrite(in, o, tokensFor(urls))
			if res.Missing != 0 {
				t.Errorf("missing = %d with every token given", res.Missing)
			}
			var got bytes.Buffer
			fmt.Fprintf(&got, "links=%d images=%d\n", res.Links, res.Images)
			for _, u := range urls {
				fmt.Fprintf(&got, "url %q\n", u)
			}
			got.WriteString("----\n")
			got.Write(out)
			golden := strings.TrimSuffix(f, ".eml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("rewrite of %s differs from %s:\n%s", f, golden, got.Bytes())
			}
			// Deterministic: the same tokens give the same bytes.
			again, _ := Rewrite(in, o, tokensFor(URLs(in, o)))
			if !bytes.Equal(again, out) {
				t.Error("a second rewrite with the same tokens differs")
			}
		})
	}
}

func TestNothingToDoReturnsInput(t *testing.T) {
	in := []byte("From: a@example.com\r\n\r\nno links here\r\n")
	out, res := Rewrite(in, testOptions(), nil)
	if !bytes.Equal(out, in) || res.Links != 0 || res.Images != 0 {
		t.Fatalf("out = %q, res = %+v", out, res)
	}
	o := testOptions()
	o.TrackClicks, o.TrackLoads = false, false
	in = []byte("Content-Type: text/html\r\n\r\n<a href='https://example.com/'>x</a></body>")
	if out, _ := Rewrite(in, o, map[string]string{"https://example.com/": "t"}); !bytes.Equal(out, in) {
		t.Fatalf("tracking off changed the message: %q", out)
	}
}

func TestMissingTokenLeavesLink(t *testing.T) {
	in := []byte("Content-Type: text/plain\r\n\r\nhttps://example.com/a https://example.com/b\r\n")
	out, res := Rewrite(in, testOptions(), map[string]string{"https://example.com/a": "TA"})
	if res.Links != 1 || res.Missing != 1 {
		t.Fatalf("res = %+v", res)
	}
	if !bytes.Contains(out, []byte("https://click.example.com/abcdef/TA https://example.com/b")) {
		t.Fatalf("out = %q", out)
	}
}

func TestSkip(t *testing.T) {
	in := []byte("X-AMP: Skip\r\nSubject: x\r\n\r\nbody\r\n")
	if !SkipRequested(in) {
		t.Fatal("X-AMP: Skip not seen")
	}
	if SkipRequested([]byte("X-AMP: no\r\n\r\n")) {
		t.Fatal("X-AMP: no taken for skip")
	}
	if got := string(StripSkip(in)); got != "Subject: x\r\n\r\nbody\r\n" {
		t.Fatalf("stripped = %q", got)
	}
}

func TestLinearInAdversarialInput(t *testing.T) {
	// Runs that would make a naive scanner quadratic: it must finish, and
	// the benchmark below shows the cost stays proportional.
	for _, unit := range []string{"http://", "href='http://a/", "href=\"https://x"} {
		in := []byte("Content-Type: text/html\r\n\r\n" + strings.Repeat(unit, 200000))
		out, _ := Rewrite(in, testOptions(), nil)
		if len(out) < len(in) {
			t.Fatalf("output shorter than input for %q", unit)
		}
	}
}

func TestCaps(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: text/plain\r\n\r\n")
	for i := 0; i < MaxLinks+10; i++ {
		fmt.Fprintf(&b, "https://example.com/%d\n", i)
	}
	if n := len(URLs([]byte(b.String()), testOptions())); n != MaxLinks {
		t.Fatalf("urls = %d, want cap %d", n, MaxLinks)
	}
	// Nesting deeper than MaxDepth is not entered.
	var d strings.Builder
	d.WriteString("Content-Type: multipart/alternative; boundary=b0\r\n\r\n")
	for i := 0; i < MaxDepth+2; i++ {
		fmt.Fprintf(&d, "--b%d\r\nContent-Type: multipart/alternative; boundary=b%d\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&d, "--b%d\r\nContent-Type: text/plain\r\n\r\nhttps://example.com/deep\r\n", MaxDepth+2)
	for i := MaxDepth + 2; i >= 0; i-- {
		fmt.Fprintf(&d, "--b%d--\r\n", i)
	}
	if n := len(URLs([]byte(d.String()), testOptions())); n != 0 {
		t.Fatalf("urls = %d in a part nested beyond MaxDepth", n)
	}
}
