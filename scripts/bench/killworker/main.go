// Command killworker measures what happens to mail when a worker process is
// killed with SIGKILL under load: it is the receiving server (answering DATA
// after -data-delay), sends -n messages to postald over -c sessions, kills
// the process -kill-pid once -kill-after messages have arrived, and waits
// until every message arrived. It prints the messages lost (never arrived),
// the duplicates (arrived twice: the at-least-once window), and how long
// after the kill the last message that the killed process had in flight
// (its receiving session broke at the kill) arrived.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

type sink struct {
	delay time.Duration
	mu    sync.Mutex
	// arrived: first arrival per message; dups: the times of second
	// arrivals (messages the killed worker had on the wire, redone by the
	// worker that took its work over).
	arrived map[int]time.Time
	dups    []time.Time
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }

type session struct{ s *sink }

func (*session) Mail(string, *smtp.MailOptions) error { return nil }
func (*session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*session) Reset()                               {}
func (*session) Logout() error                        { return nil }

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	seq := -1
	const h = "X-Bench-Seq: "
	if i := strings.Index(string(data), h); i >= 0 {
		rest := string(data[i+len(h):])
		if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
			rest = rest[:j]
		}
		seq, _ = strconv.Atoi(strings.TrimSpace(rest))
	}
	time.Sleep(ss.s.delay) // a slow receiver: the message is in flight meanwhile
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if _, ok := ss.s.arrived[seq]; ok {
		ss.s.dups = append(ss.s.dups, time.Now())
	} else {
		ss.s.arrived[seq] = time.Now()
	}
	return nil
}

func main() {
	sinkAddr := flag.String("sink", "127.0.0.1:2526", "address to receive the relayed mail on")
	target := flag.String("smtp", "127.0.0.1:2525", "postald's SMTP address")
	n := flag.Int("n", 1000, "messages")
	c := flag.Int("c", 10, "sending sessions")
	delay := flag.Duration("data-delay", time.Second, "how long the receiver takes to answer DATA")
	killPID := flag.Int("kill-pid", 0, "the worker process to kill with SIGKILL")
	killAfter := flag.Int("kill-after", 200, "kill once this many messages arrived")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after")
	flag.Parse()
	if err := run(*sinkAddr, *target, *n, *c, *delay, *killPID, *killAfter, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "killworker:", err)
		os.Exit(1)
	}
}

func run(sinkAddr, target string, n, conc int, delay time.Duration, killPID, killAfter int, timeout time.Duration) error {
	if killPID <= 0 {
		return errors.New("-kill-pid is required")
	}
	ln, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		return err
	}
	sk := &sink{delay: delay, arrived: map[int]time.Time{}}
	srv := smtp.NewServer(sk)
	srv.Domain = "sink.bench"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	seqs := make(chan int)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			cl, err := smtp.Dial(target)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			if err := cl.Hello("killworker.bench"); err != nil {
				errs <- err
				return
			}
			for seq := range seqs {
				body := fmt.Sprintf("From: <alice@example.com>\r\nTo: <bob@dest.test>\r\nSubject: kill %d\r\nX-Bench-Seq: %d\r\n\r\nmessage %d\r\n", seq, seq, seq)
				if err := cl.SendMail("alice@example.com", []string{"bob@dest.test"}, strings.NewReader(body)); err != nil {
					errs <- fmt.Errorf("message %d: %w", seq, err)
					return
				}
			}
		})
	}
	go func() {
		for i := range n {
			seqs <- i
		}
		close(seqs)
	}()
	count := func() int {
		sk.mu.Lock()
		defer sk.mu.Unlock()
		return len(sk.arrived)
	}
	deadline := time.Now().Add(timeout)
	for count() < killAfter {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d messages arrived before the kill", count())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Which messages are in flight with the killed process cannot be seen
	// from here; every message that had not arrived at the kill is
	// followed, and the report gives the last arrival of those.
	sk.mu.Lock()
	pendingAtKill := n - len(sk.arrived)
	sk.mu.Unlock()
	if err := syscall.Kill(killPID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", killPID, err)
	}
	killed := time.Now()
	for count() < n {
		select {
		case err := <-errs:
			return err
		default:
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	sk.mu.Lock()
	defer sk.mu.Unlock()
	var last time.Time
	for _, at := range sk.arrived {
		if at.After(last) {
			last = at
		}
	}
	lost := n - len(sk.arrived)
	var lastDup time.Time
	for _, at := range sk.dups {
		if at.After(lastDup) {
			lastDup = at
		}
	}
	redone := "none"
	if len(sk.dups) > 0 {
		redone = fmt.Sprintf("last %.1f s after the kill", lastDup.Sub(killed).Seconds())
	}
	fmt.Printf("killworker: %d messages, %d not arrived at the kill; lost %d; duplicates %d (%s); last arrival %.1f s after the kill\n",
		n, pendingAtKill, lost, len(sk.dups), redone, last.Sub(killed).Seconds())
	return nil
}
