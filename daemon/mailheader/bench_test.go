package mailheader_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/postalgo/postal/daemon/mailheader"
)

// foldedHeader is one Subject field folded over n lines, then a short body:
// the shape of the header bomb of issue #14.
func foldedHeader(n int) []byte {
	var b strings.Builder
	b.WriteString("Subject: bomb\r\n")
	for range n {
		b.WriteString(" x\r\n")
	}
	b.WriteString("\r\nbody\r\n")
	return []byte(b.String())
}

// BenchmarkParseFolded parses, and reads the value of, one field folded over
// 10k, 80k and 160k lines; ns/line must stay flat (linear time).
func BenchmarkParseFolded(b *testing.B) {
	for _, n := range []int{10_000, 80_000, 160_000} {
		msg := foldedHeader(n)
		b.Run(strconv.Itoa(n/1000)+"k", func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				h := mailheader.Parse(msg)
				if h.Lines() != n+1 || len(h.First("Subject")) < n {
					b.Fatal("wrong parse")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n+1), "ns/line")
		})
	}
}

// BenchmarkScannerFolded feeds the same blocks to a Scanner in 32 KiB
// pieces, as DATA arrives, without limits.
func BenchmarkScannerFolded(b *testing.B) {
	for _, n := range []int{10_000, 80_000, 160_000} {
		msg := foldedHeader(n)
		b.Run(strconv.Itoa(n/1000)+"k", func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var s mailheader.Scanner
				for i := 0; i < len(msg); i += 32 << 10 {
					_, _ = s.Write(msg[i:min(i+32<<10, len(msg))])
				}
				if !s.Done() || s.Lines() != n+1 {
					b.Fatal("wrong scan")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n+1), "ns/line")
		})
	}
}
