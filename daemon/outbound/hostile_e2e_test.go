package outbound

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/worker"
)

// hostileReplies maps a recipient's local part to the final reply the
// hostile server gives to its message: Latin-1, a NUL byte, and a reply
// whose 512-byte cut (the stored output is "250 2.0.0 " + text) falls
// inside a two-byte character. "plain" is a well-behaved reply, so the
// batch mixes clean and hostile outcomes.
var hostileReplies = map[string]string{
	"latin": "250 2.0.0 Nachricht f\xfcr Empf\xe4nger angenommen",
	"nul":   "250 2.0.0 Ok\x00 queued as 4711",
	"long":  "250 2.0.0 " + strings.Repeat("a", 501) + strings.Repeat("é", 100),
	"plain": "250 2.0.0 Ok",
}

// refusal is the hostile server's answer to RCPT TO:<refuse...>: a
// permanent refusal in Latin-1 with a NUL byte, which becomes the output of
// a HardFail delivery, a suppression reason and a bounce's diagnostic.
const refusal = "550 5.1.1 Empf\xe4nger\x00 unbekannt"

// hostileServer is a raw SMTP server over TCP that accepts every message and
// answers its data with hostileReplies[local part], counting each message it
// accepted per recipient.
type hostileServer struct {
	port int

	mu       sync.Mutex
	accepted map[string]int
}

func startHostileServer(t *testing.T) *hostileServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &hostileServer{port: l.Addr().(*net.TCPAddr).Port, accepted: map[string]int{}}
	var wg sync.WaitGroup
	var cmu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns[c] = struct{}{}
			cmu.Unlock()
			wg.Go(func() { hs.serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		cmu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	return hs
}

func (hs *hostileServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) bool { _, err := io.WriteString(c, s+"\r\n"); return err == nil }
	if !say("220 hostile.test ESMTP") {
		return
	}
	var rcpts []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		reply := "250 2.0.0 ok"
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply = "250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME"
		case "MAIL", "RSET":
			rcpts = nil
		case "RCPT":
			addr := arg // "TO:<addr>" and perhaps parameters
			if i := strings.IndexByte(arg, '<'); i >= 0 {
				if j := strings.IndexByte(arg[i:], '>'); j > 0 {
					addr = arg[i+1 : i+j]
				}
			}
			if strings.HasPrefix(addr, "refuse") {
				reply = refusal
				break
			}
			rcpts = append(rcpts, strings.ToLower(addr))
		case "QUIT":
			say("221 bye")
			return
		case "DATA":
			if !say("354 go ahead") {
				return
			}
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			reply = hostileReplies["plain"]
			hs.mu.Lock()
			for _, r := range rcpts {
				hs.accepted[r]++
				local, _, _ := strings.Cut(r, "@")
				if rep, ok := hostileReplies[strings.TrimRight(local, "0123456789")]; ok {
					reply = rep
				}
			}
			hs.mu.Unlock()
		}
		if !say(reply) {
			return
		}
	}
}

func (hs *hostileServer) counts() map[string]int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make(map[string]int, len(hs.accepted))
	for k, v := range hs.accepted {
		out[k] = v
	}
	return out
}

// TestHostileRepliesAreRecordedOnce is the end-to-end proof that reply text
// from a receiving server cannot make the outcome batch fail: messages go
// through a real worker (stream read, SQL claim, outcome batch, ack) and this
// package's Processor (MX lookup, SMTP over TCP) to a server answering in
// Latin-1, with a NUL byte and with a reply the 512-byte cut splits inside a
// character. Every message is delivered exactly once, marked Sent, and its
// delivery output is stored as valid UTF-8, on SQLite and PostgreSQL.
func TestHostileRepliesAreRecordedOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		hs := startHostileServer(t)
		e := newEnv(t, envOptions{store: s, tune: func(o *Options) { o.SMTPClient.DestinationPort = hs.port }})
		// The worker's own queue: few deliveries, so that a batch that
		// cannot commit ends (HardFail) within the test's deadline.
		rc, keys := redistest.New(t)
		q := queue.New(queue.Options{Client: rc, Keys: keys, MaxDeliveries: 3})
		ctx := context.Background()
		if err := q.Init(ctx); err != nil {
			t.Fatal(err)
		}

		var subs []store.Submission
		var rcpts []string
		locals := []string{"refuse"}
		for local := range hostileReplies {
			locals = append(locals, local)
		}
		for i := range 3 {
			for _, local := range locals {
				rcpt := local + string(rune('0'+i)) + "@dest.test"
				rcpts = append(rcpts, rcpt)
				subs = append(subs, store.Submission{Raw: rawMessage(rcpt, "hostile"), Messages: []store.NewMessage{{
					ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: rcpt, MailFrom: "sender@example.com",
					DomainID: e.fx.Domain.ID, CredentialID: e.fx.Credential.ID, Queue: true, QueueDomain: "dest.test"}}})
			}
		}
		acc, err := s.InsertSubmissions(ctx, subs)
		if err != nil {
			t.Fatal(err)
		}
		var jobs []queue.Job
		ids := make(map[int64]string, len(acc))
		for i, a := range acc {
			jobs = append(jobs, queue.Job{ID: a[0].QueuedID, Domain: a[0].Domain})
			ids[a[0].MessageID] = rcpts[i]
		}
		if err := q.Enqueue(ctx, queue.Outgoing, jobs...); err != nil {
			t.Fatal(err)
		}

		w, err := worker.New(worker.Options{
			Config:    config.Worker{Threads: 2, VisibilityTimeout: 1, BatchSize: 20},
			Postal:    config.Postal{BatchQueuedMessages: true},
			Store:     s,
			Queue:     q,
			Handlers:  map[queue.Kind]worker.Handler{queue.Outgoing: e.p},
			Owner:     "hostile-test",
			ReadBlock: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker Run: %v", err)
			}
		}()

		// Poll until every message is Sent, or HardFail for the refused
		// ones. A batch that cannot commit never gets there: its messages
		// are sent again, then all marked HardFail.
		wantFailed := 3
		final := func() (sent, failed int, statuses map[string]string) {
			statuses = map[string]string{}
			for id, rcpt := range ids {
				m := e.message(id)
				statuses[rcpt] = m.Status
				switch m.Status {
				case store.StatusSent:
					sent++
				case store.StatusHardFail:
					failed++
				}
			}
			return sent, failed, statuses
		}
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			sent, failed, statuses := final()
			if sent == len(ids)-wantFailed && failed == wantFailed {
				break
			}
			if sent+failed == len(ids) || time.Now().After(deadline) {
				t.Fatalf("%d of %d messages marked Sent, %d HardFail (want %d): %v; server counts %v",
					sent, len(ids), failed, wantFailed, statuses, hs.counts())
			}
			<-tick.C
		}

		counts := hs.counts()
		for _, rcpt := range rcpts {
			want := 1
			if strings.HasPrefix(rcpt, "refuse") {
				want = 0
			}
			if counts[rcpt] != want {
				t.Errorf("%s delivered %d times, want %d", rcpt, counts[rcpt], want)
			}
		}
		// The refusal also became suppression reasons and bounces.
		sup, err := s.ActiveSuppressions(ctx, e.fx.Server.ID, []string{"refuse0@dest.test"}, time.Now())
		if r := sup["refuse0@dest.test"]; err != nil || r == nil || !strings.Contains(r.Reason, "Empfänger\uFFFD unbekannt") {
			t.Errorf("suppression = %+v, %v; want the refusal as its reason", r, err)
		}
		// The worker committed the bounces (DSNs to the sender) with the
		// outcomes: one stored bounce message per refusal.
		msgs, err := s.ServerMessages(ctx, e.fx.Server.ID, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		bounces := 0
		for _, m := range msgs {
			if m.Bounce && m.RcptTo == "sender@example.com" {
				bounces++
			}
		}
		if bounces != wantFailed {
			t.Errorf("%d bounces stored, want %d", bounces, wantFailed)
		}
		for id, rcpt := range ids {
			ds := e.deliveries(id)
			wantStatus := store.StatusSent
			if strings.HasPrefix(rcpt, "refuse") {
				wantStatus = store.StatusHardFail
			}
			if len(ds) != 1 || ds[0].Status != wantStatus {
				t.Errorf("%s: deliveries %+v, want one %s", rcpt, ds, wantStatus)
				continue
			}
			out := ds[0].Output
			if !utf8.ValidString(out) || strings.ContainsRune(out, 0) || len(out) > 512 {
				t.Errorf("%s: output %q (%d bytes) is not valid, NUL-free UTF-8 within 512 bytes", rcpt, out, len(out))
			}
			local, _, _ := strings.Cut(rcpt, "@")
			want := map[string]string{
				"latin":  "250 2.0.0 Nachricht für Empfänger angenommen",
				"nul":    "250 2.0.0 Ok\uFFFD queued as 4711",
				"long":   "250 2.0.0 " + strings.Repeat("a", 501), // the cut falls inside the first "é"
				"plain":  "250 2.0.0 Ok",
				"refuse": "550 5.1.1 Empfänger\uFFFD unbekannt",
			}[strings.TrimRight(local, "0123456789")]
			if out != want {
				t.Errorf("%s: output %q, want %q", rcpt, out, want)
			}
		}
	})
}
