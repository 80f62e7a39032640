package compose_test

import (
	"strings"
	"testing"

	"github.com/postalgo/postal/daemon/compose"
)

// BenchmarkBuild is the per-request cost of building a send/message
// message with a 2 KB plain body (what scripts/bench/api.sh sends).
func BenchmarkBuild(b *testing.B) {
	body := strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 45)
	m := compose.Message{Received: "from api (127.0.0.1 [127.0.0.1]) by postal.test with HTTP; Fri, 04 Dec 2026 10:00:00 +0000",
		Date: date, From: "alice@example.com", To: []string{"bob@dest.test"}, MessageID: "x@rp.test", Subject: "bench", Plain: &body}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compose.Build(m); err != nil {
			b.Fatal(err)
		}
	}
}
