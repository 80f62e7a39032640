// Command latency measures how long a message takes from postald's 250 to
// its arrival at the receiving server, one message at a time: it listens as
// the receiving server (-sink), sends -n messages to postald (-smtp), each
// after the previous one arrived, and prints p50/p90/p99/max.
//
// postald must relay to -sink (postal.smtp_relays) and accept mail from
// this host without AUTH (an smtp-ip credential); scripts/bench/latency.sh
// sets that up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	sinkAddr := flag.String("sink", "127.0.0.1:2526", "address to receive the relayed mail on")
	target := flag.String("smtp", "127.0.0.1:2525", "postald's SMTP address")
	n := flag.Int("n", 200, "messages to send")
	warmup := flag.Int("warmup", 10, "messages sent first and not measured")
	from := flag.String("from", "alice@example.com", "envelope sender")
	to := flag.String("to", "bob@dest.test", "recipient")
	timeout := flag.Duration("timeout", 30*time.Second, "how long one message may take to arrive")
	overlap := flag.Bool("overlap", false, "send each message as soon as the previous one got its 250, without waiting for its arrival")
	perSession := flag.Bool("session-per-message", false, "open a new SMTP session for every message (as smtp-source does)")
	sinkDir := flag.String("sink-dir", "", "instead of listening, watch this folder: an external sink (Postfix's smtp-sink -d) writes one file per message")
	flag.Parse()
	if err := run(*sinkAddr, *sinkDir, *target, *from, *to, *n, *warmup, *timeout, *perSession, *overlap); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// sink records when each numbered message arrived.
type sink struct {
	mu      sync.Mutex
	arrived map[int]chan time.Time
}

func (s *sink) wait(seq int) chan time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.arrived[seq]
	if !ok {
		c = make(chan time.Time, 1)
		s.arrived[seq] = c
	}
	return c
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }

type session struct{ s *sink }

func (*session) Mail(string, *smtp.MailOptions) error { return nil }
func (*session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*session) Reset()                               {}
func (*session) Logout() error                        { return nil }

// Data answers 250 and notes the arrival of the message whose
// X-Bench-Seq header it finds.
func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	at := time.Now()
	const h = "X-Bench-Seq: "
	i := strings.Index(string(data), h)
	if i < 0 {
		return nil
	}
	rest := string(data[i+len(h):])
	if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	if seq, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
		select {
		case ss.s.wait(seq) <- at:
		default: // a duplicate delivery: the first arrival counts
		}
	}
	return nil
}

func run(sinkAddr, sinkDir, target, from, to string, n, warmup int, timeout time.Duration, perSession, overlap bool) error {
	sk := &sink{arrived: map[int]chan time.Time{}}
	if sinkDir != "" {
		stop := make(chan struct{})
		defer close(stop)
		go watch(sinkDir, sk, stop)
	} else {
		ln, err := net.Listen("tcp", sinkAddr)
		if err != nil {
			return err
		}
		srv := smtp.NewServer(sk)
		srv.Domain = "sink.bench"
		srv.ErrorLog = log.New(io.Discard, "", 0)
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}

	c, err := dialWhenUp(target, 30*time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	var lat []time.Duration
	accepted := make([]time.Time, warmup+n)
	arrival := func(seq int) error {
		select {
		case at := <-sk.wait(seq):
			if seq >= warmup {
				lat = append(lat, at.Sub(accepted[seq]))
			}
			return nil
		case <-time.After(timeout):
			return fmt.Errorf("message %d did not arrive within %v", seq, timeout)
		}
	}
	for seq := range warmup + n {
		body := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: latency %d\r\nX-Bench-Seq: %d\r\n\r\nmessage %d\r\n", from, to, seq, seq, seq)
		if perSession && seq > 0 {
			_ = c.Quit()
			if c, err = dialWhenUp(target, 5*time.Second); err != nil {
				return err
			}
		}
		if err := c.SendMail(from, []string{to}, strings.NewReader(body)); err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
		accepted[seq] = time.Now()
		if overlap && seq >= warmup {
			continue
		}
		if err := arrival(seq); err != nil {
			return err
		}
	}
	for seq := warmup; overlap && seq < warmup+n; seq++ {
		if err := arrival(seq); err != nil {
			return err
		}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	mode := "one at a time"
	if overlap {
		mode = "one after the other's 250"
	}
	fmt.Printf("latency 250 -> arrival, %d messages %s: p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
		len(lat), mode, ms(q(0.50)), ms(q(0.90)), ms(q(0.99)), ms(lat[len(lat)-1]))
	return nil
}

// watch polls dir every 200 µs and reports the k-th file to appear as the
// arrival of message k (messages are sent one at a time, so in order).
func watch(dir string, sk *sink, stop chan struct{}) {
	seen := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		if es, err := os.ReadDir(dir); err == nil && len(es) > seen {
			at := time.Now()
			for ; seen < len(es); seen++ {
				select {
				case sk.wait(seen) <- at:
				default:
				}
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// dialWhenUp connects to addr, retrying until it answers or wait passes.
func dialWhenUp(addr string, wait time.Duration) (*smtp.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		c, err := smtp.Dial(addr)
		if err == nil {
			if err = c.Hello("latency.bench"); err == nil {
				return c, nil
			}
			_ = c.Close()
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("postald at %s did not answer", addr), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
