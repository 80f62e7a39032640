package smtpserver_test

import (
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

// BenchmarkHeaderBombAnswer measures, over TCP on one session, the time from
// the start of DATA to the server's answer for the header bomb of issue #14
// (one field folded over 160k lines, 640 KB; refused 552 at the 10,001st
// line) and for a plain message of the same size (accepted, stored in
// SQLite). The two ns/op are comparable; before mailheader the bomb took
// seconds.
func BenchmarkHeaderBombAnswer(b *testing.B) {
	bomb := headerBomb(160_000)
	plain := "From: a@example.org\r\nSubject: plain\r\n\r\n" + strings.Repeat(strings.Repeat("p", 76)+"\r\n", len(bomb)/78)
	for _, tc := range []struct {
		name, body string
		code       int
	}{{"bomb-160k-lines", bomb, 552}, {"plain-same-size", plain, 250}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, func(o *smtpserver.Options) { o.Config.MaxCommands, o.Config.MaxBadCommands = 1<<30, 1<<30 })
			e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
			r := e.rawDial()
			r.expect(220, "")
			r.send("EHLO client.test")
			r.expect(250, "")
			data := []byte(tc.body + ".\r\n")
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r.send("MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(354, "")
				if _, err := r.conn.Write(data); err != nil {
					b.Fatal(err)
				}
				r.expect(tc.code, "")
			}
		})
	}
}

// procStatus reads a "VmHWM"/"VmRSS" line of /proc/self/status, in MB.
func procStatus(b *testing.B, key string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", key)
	return 0
}

// BenchmarkRSSHugeRecipients sends 400 RCPT commands of 1 MB each on one
// session (issue #14: ~690 MB RSS pinned by the lookup cache) and reports
// the process's peak and final RSS. Run it alone, with -benchtime 1x: the
// peak is the process's.
func BenchmarkRSSHugeRecipients(b *testing.B) {
	e := newEnv(b, func(o *smtpserver.Options) { o.Config.MaxBadCommands = 1 << 30 })
	for b.Loop() {
		sendHugeRecipients(b, e, 400)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	b.ReportMetric(procStatus(b, "VmHWM"), "peak-RSS-MB")
	b.ReportMetric(procStatus(b, "VmRSS"), "RSS-after-GC-MB")
}

// BenchmarkRSSConcurrentLargeMessages has 30 sessions send a 14 MB message
// each at once, against the default limits (max_message_size 14,
// max_in_flight_size 256), and reports how many were accepted and refused
// 451 4.3.1, the peak of reserved bytes and the process's peak RSS (which
// includes the clients' shared 14 MB body and SQLite storing what was
// accepted). Run it alone, with -benchtime 1x.
func BenchmarkRSSConcurrentLargeMessages(b *testing.B) {
	const sessions = 30
	e := newEnv(b, func(o *smtpserver.Options) { o.Config.MaxConnectionsPerIP = 100 })
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	line := strings.Repeat("m", 998) + "\r\n"
	body := []byte("From: a@example.org\r\nSubject: large\r\n\r\n" + strings.Repeat(line, (14<<20-1024)/len(line)) + ".\r\n")
	var accepted, refused, other atomic.Int64
	var peak atomic.Int64
	for b.Loop() {
		var wg sync.WaitGroup
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if n := e.srv.InFlightBytes(); n > peak.Load() {
					peak.Store(n)
				}
				runtime.Gosched()
			}
		}()
		for range sessions {
			r := e.rawDial()
			wg.Go(func() {
				r.expect(220, "")
				r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(354, "")
				if _, err := r.conn.Write(body); err != nil && err != io.EOF {
					other.Add(1)
					return
				}
				switch c, _ := r.reply(); c {
				case 250:
					accepted.Add(1)
				case 451:
					refused.Add(1)
				default:
					other.Add(1)
				}
				_ = r.conn.Close()
			})
		}
		wg.Wait()
		close(done)
	}
	b.ReportMetric(float64(accepted.Load())/float64(b.N), "accepted")
	b.ReportMetric(float64(refused.Load())/float64(b.N), "refused-451")
	b.ReportMetric(float64(other.Load())/float64(b.N), "other")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-reserved-MB")
	b.ReportMetric(procStatus(b, "VmHWM"), "peak-RSS-MB")
}
