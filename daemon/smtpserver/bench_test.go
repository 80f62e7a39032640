package smtpserver_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkAccept measures acceptance end to end: 20 concurrent
// authenticated go-smtp client sessions send 2 KB messages to a server
// whose intake commits to SQLite (synchronous=FULL) and dispatches to the
// real Redis. It reports accepted messages per second.
func BenchmarkAccept(b *testing.B) {
	const sessions = 20
	e := newEnv(b)
	body := message("alice@example.com", "benchmark")
	body += strings.Repeat(strings.Repeat("x", 76)+"\r\n", (2048-len(body))/78)
	clients := make([]*smtp.Client, sessions)
	for i := range clients {
		clients[i] = e.dialAuth()
	}
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := send(c, "alice@example.com", []string{"bob@example.org"}, body); err != nil {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d sessions failed to send", n)
	}
	if got := len(e.rec.all()); got != b.N {
		b.Fatalf("%d messages accepted, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}
