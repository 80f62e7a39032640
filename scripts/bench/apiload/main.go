// Command apiload is the load generator of scripts/bench/api.sh: it sends
// the same message through postald's HTTP API (send/message, one recipient)
// and over SMTP, with the same concurrency, in one run, and prints each
// side's accepted messages per second, p50 and p99 latency, and the ratio.
// A send counts only when postald answered success (API) or 250 (SMTP);
// both mean the message is committed in SQL.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

type result struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration
	firstErr   string
	cpu        time.Duration // postald's CPU time during the side
}

// cpuTime is the user+system CPU time of process pid so far (0 without
// one); it assumes the usual 100 clock ticks per second.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

func main() {
	var (
		base     = flag.String("url", "http://127.0.0.1:5000", "postald web-server base URL")
		key      = flag.String("key", "", "API key (X-Server-API-Key)")
		smtpAddr = flag.String("smtp", "", "postald smtp-server host:port (empty: API only)")
		n        = flag.Int("n", 10000, "messages per side")
		c        = flag.Int("c", 50, "concurrent clients per side")
		size     = flag.Int("size", 2048, "body size in bytes")
		warmup   = flag.Int("warmup", 500, "API requests before measuring (not counted)")
		first    = flag.String("first", "api", "which side runs first: api or smtp")
		pid      = flag.Int("pid", 0, "postald's process id: report its CPU time per message for each side")
	)
	flag.Parse()
	body := strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", *size/46+1)[:*size]
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: *c * 2, MaxIdleConnsPerHost: *c * 2}, Timeout: time.Minute}
	if *warmup > 0 {
		runAPI(client, *base, *key, body, *warmup, *c)
	}
	sides := []string{"api", "smtp"}
	if *first == "smtp" {
		sides = []string{"smtp", "api"}
	}
	res := map[string]result{}
	for _, s := range sides {
		before := cpuTime(*pid)
		switch {
		case s == "api":
			res[s] = runAPI(client, *base, *key, body, *n, *c)
		case *smtpAddr != "":
			res[s] = runSMTP(*smtpAddr, body, *n, *c)
		default:
			continue
		}
		r := res[s]
		r.cpu = cpuTime(*pid) - before
		res[s] = r
	}
	for _, s := range []string{"api", "smtp"} {
		r, ok := res[s]
		if !ok {
			continue
		}
		fmt.Printf("%-4s %7.0f msg/s   p50 %6.2f ms   p99 %6.2f ms   ok %d   failed %d   (%d msgs, %d B body, concurrency %d)\n",
			s, r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), r.ok, r.failed, *n, *size, *c)
		if *pid > 0 && r.ok > 0 {
			fmt.Printf("     postald CPU %.3f ms per message\n", ms(r.cpu)/float64(r.ok))
		}
		if r.firstErr != "" {
			fmt.Printf("     first failure: %s\n", r.firstErr)
		}
	}
	if a, ok := res["api"]; ok {
		if s, ok := res["smtp"]; ok && s.rate() > 0 {
			fmt.Printf("ratio api/smtp %.2fx (throughput), p99 %.2fx\n", a.rate()/s.rate(), ms(a.pct(0.99))/ms(s.pct(0.99)))
		}
	}
	if res["api"].failed > 0 || res["smtp"].failed > 0 {
		os.Exit(1)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runAPI posts n send/message requests from c goroutines.
func runAPI(client *http.Client, base, key, body string, n, c int) result {
	payload, _ := json.Marshal(map[string]any{"to": []string{"bob@dest.test"}, "from": "alice@example.com",
		"subject": "bench", "plain_body": body})
	return measure(n, c, func(int) func() (bool, string) {
		return func() (bool, string) {
			req, _ := http.NewRequest("POST", base+"/api/v1/send/message", bytes.NewReader(payload))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Server-API-Key", key)
			resp, err := client.Do(req)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var env struct{ Status string }
			if json.Unmarshal(b, &env) != nil || env.Status != "success" {
				return false, fmt.Sprintf("HTTP %d %s", resp.StatusCode, b)
			}
			return true, ""
		}
	})
}

// runSMTP sends n messages over c SMTP sessions (one connection each,
// reused; the client's address is an SMTP-IP credential).
func runSMTP(addr, body string, n, c int) result {
	msg := []byte("From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: bench\r\n\r\n" + body)
	return measure(n, c, func(int) func() (bool, string) {
		var conn *smtp.Client
		return func() (bool, string) {
			if conn == nil {
				var err error
				if conn, err = smtp.Dial(addr); err != nil {
					return false, err.Error()
				}
				if err := conn.Hello("bench.local"); err != nil {
					conn = nil
					return false, err.Error()
				}
			}
			if err := conn.SendMail("alice@example.com", []string{"bob@dest.test"}, bytes.NewReader(msg)); err != nil {
				conn.Close()
				conn = nil
				return false, err.Error()
			}
			return true, ""
		}
	})
}

// measure runs n operations over c workers (each with its own op state)
// and records each one's latency.
func measure(n, c int, newOp func(worker int) func() (bool, string)) result {
	var (
		mu   sync.Mutex
		res  result
		left atomic.Int64
		wg   sync.WaitGroup
	)
	left.Store(int64(n))
	start := time.Now()
	for w := range c {
		op := newOp(w)
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/c+1)
			var ok, failed int64
			var firstErr string
			for left.Add(-1) >= 0 {
				t := time.Now()
				good, msg := op()
				lat = append(lat, time.Since(t))
				if good {
					ok++
				} else {
					failed++
					if firstErr == "" {
						firstErr = msg
					}
				}
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.latencies = append(res.latencies, lat...)
			if res.firstErr == "" {
				res.firstErr = firstErr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}
