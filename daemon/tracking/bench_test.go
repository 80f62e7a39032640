package tracking

import (
	"os"
	"testing"
)

// BenchmarkRewrite measures one message's full tracking cost: collecting
// its URLs, then rewriting with their tokens.
func BenchmarkRewrite(b *testing.B) {
	in, err := os.ReadFile("testdata/alternative.eml")
	if err != nil {
		b.Fatal(err)
	}
	o := testOptions()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		urls := URLs(in, o)
		Rewrite(in, o, tokensFor(urls))
	}
}
