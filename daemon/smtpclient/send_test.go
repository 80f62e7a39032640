package smtpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var testEnv = Envelope{From: "sender@client.test", To: []string{"rcpt@mx.test"}}

// mustSend sends and fails the test on error.
func mustSend(t *testing.T, c *Client, d Destination, env Envelope, data string) *Result {
	t.Helper()
	res, err := c.Send(context.Background(), d, env, []byte(data))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return res
}

// asError asserts err is a *Error.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *Error", err, err)
	}
	return e
}

func TestSendDeliversNormalisedDotStuffedData(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string // what the server reads after removing dot-stuffing
	}{
		{"CRLF message unchanged", "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"},
		{"bare LF becomes CRLF", "Subject: a\n\nline1\nline2\n", "Subject: a\r\n\r\nline1\r\nline2\r\n"},
		{"bare CR becomes CRLF", "a\rb\r\n", "a\r\nb\r\n"},
		{"missing final newline is added", "Subject: a\r\n\r\nlast", "Subject: a\r\n\r\nlast\r\n"},
		{"leading dots survive", ".hidden\r\n..two\r\n.\r\nend\n", ".hidden\r\n..two\r\n.\r\nend\r\n"},
		{"dot right after bare LF", "x\n.\n.y", "x\r\n.\r\n.y\r\n"},
		{"end-of-data lookalike in body", "a\r\n.\r\nQUIT\r\n", "a\r\n.\r\nQUIT\r\n"},
	}
	be := &backend{}
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Envelope{From: fmt.Sprintf("s%d@client.test", i), To: []string{"a@mx.test", "b@mx.test"}}
			res := mustSend(t, c, ts.dest(), env, tt.data)
			msgs := be.messages()
			got := msgs[len(msgs)-1]
			if got.from != env.From || !slices.Equal(got.to, env.To) {
				t.Errorf("server envelope = %q -> %q, want %q -> %q", got.from, got.to, env.From, env.To)
			}
			if string(got.data) != tt.want {
				t.Errorf("server data = %q, want %q", got.data, tt.want)
			}
			if res.Code != 250 || res.Enhanced != "2.0.0" || !slices.Equal(res.Accepted, env.To) || res.Rejected != nil {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

func TestSendDeclaresBodyAndAddressExtensions(t *testing.T) {
	tests := []struct {
		name     string
		smtpUTF8 bool
		env      Envelope
		data     string
		wantBody smtp.BodyType
		wantUTF8 bool
		wantErr  string // stage of a permanent error, "" for success
	}{
		{"7bit body has no BODY parameter", false, testEnv, "plain\r\n", "", false, ""},
		{"8bit body is declared 8BITMIME", false, testEnv, "caf\xc3\xa9\r\n", smtp.Body8BitMIME, false, ""},
		{"non-ASCII recipient uses SMTPUTF8", true, Envelope{From: "a@client.test", To: []string{"j\xc3\xb6rg@mx.test"}}, "x\r\n", "", true, ""},
		{"non-ASCII recipient without SMTPUTF8 is refused locally", false, Envelope{From: "a@client.test", To: []string{"j\xc3\xb6rg@mx.test"}}, "x\r\n", "", false, StageRcpt},
		{"non-ASCII sender without SMTPUTF8 is refused locally", false, Envelope{From: "j\xc3\xb6rg@client.test", To: []string{"a@mx.test"}}, "x\r\n", "", false, StageMail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &backend{}
			ts := startServer(t, be, serverOpts{smtpUTF8: tt.smtpUTF8, maxBytes: 1 << 20})
			c := newClient(t, nil)
			_, err := c.Send(context.Background(), ts.dest(), tt.env, []byte(tt.data))
			if tt.wantErr != "" {
				e := asError(t, err)
				if e.Stage != tt.wantErr || !e.Permanent || e.Enhanced != "5.6.7" {
					t.Fatalf("error = %+v, want permanent 5.6.7 at %s", e, tt.wantErr)
				}
				if be.mails() != 0 {
					t.Errorf("server saw %d MAIL commands, want none", be.mails())
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := be.messages()[0]
			if got.body != tt.wantBody || got.utf8 != tt.wantUTF8 {
				t.Errorf("server saw BODY=%q SMTPUTF8=%v, want %q %v", got.body, got.utf8, tt.wantBody, tt.wantUTF8)
			}
			if got.size != int64(len(tt.data)) {
				t.Errorf("server saw SIZE=%d, want %d", got.size, len(tt.data))
			}
		})
	}
}

// scripted refuses by address: MAIL from "mail451@..."; RCPT to "rcpt451..."
// or "rcpt550..."; the data of a message from "data451@..." or "data552@...".
func scripted() *backend {
	return &backend{
		onMail: func(from string) error {
			if strings.HasPrefix(from, "mail451@") {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			}
			return nil
		},
		onRcpt: func(to string) error {
			switch {
			case strings.HasPrefix(to, "rcpt451"):
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
			case strings.HasPrefix(to, "rcpt550"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
		onData: func(_ *smtp.Conn, from string, _ io.Reader) error {
			switch {
			case strings.HasPrefix(from, "data451@"):
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "queue full"}
			case strings.HasPrefix(from, "data552@"):
				return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big for policy"}
			}
			return nil
		},
	}
}

func TestSendClassifiesRefusals(t *testing.T) {
	tests := []struct {
		name          string
		env           Envelope
		data          string
		wantStage     string
		wantCode      int
		wantEnhanced  string
		wantPermanent bool
		wantRejected  int
		wantMails     int // MAIL commands the server saw
	}{
		{"451 at MAIL is temporary", Envelope{From: "mail451@c.test", To: []string{"a@mx.test"}}, "x", StageMail, 451, "4.3.0", false, 0, 1},
		{"451 for every RCPT is temporary", Envelope{From: "s@c.test", To: []string{"rcpt451a@mx.test", "rcpt451b@mx.test"}}, "x", StageRcpt, 451, "4.2.1", false, 2, 1},
		{"550 for every RCPT is permanent", Envelope{From: "s@c.test", To: []string{"rcpt550@mx.test"}}, "x", StageRcpt, 550, "5.1.1", true, 1, 1},
		{"550 and 451 mixed is temporary", Envelope{From: "s@c.test", To: []string{"rcpt550@mx.test", "rcpt451@mx.test"}}, "x", StageRcpt, 451, "4.2.1", false, 2, 1},
		{"451 after the data is temporary", Envelope{From: "data451@c.test", To: []string{"a@mx.test"}}, "x", StageData, 451, "4.3.0", false, 0, 1},
		{"552 after the data is permanent", Envelope{From: "data552@c.test", To: []string{"a@mx.test"}}, "x", StageData, 552, "5.3.4", true, 0, 1},
		{"message above SIZE is refused before MAIL", Envelope{From: "s@c.test", To: []string{"a@mx.test"}}, strings.Repeat("x", 200), StageMail, 552, "5.3.4", true, 0, 0},
		{"CRLF in a recipient is refused locally", Envelope{From: "s@c.test", To: []string{"a@mx.test>\r\nRCPT TO:<b@mx.test"}}, "x", StageRcpt, 553, "5.1.3", true, 1, 0},
		{"CRLF in the sender is refused locally", Envelope{From: "s@c.test>\r\nRSET", To: []string{"a@mx.test"}}, "x", StageMail, 553, "5.1.7", true, 0, 0},
		{"no recipients is refused locally", Envelope{From: "s@c.test"}, "x", StageRcpt, 554, "5.5.1", true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := scripted()
			ts := startServer(t, be, serverOpts{maxBytes: 100})
			c := newClient(t, nil)
			// A first good message opens the connection the refusal must
			// leave usable.
			mustSend(t, c, ts.dest(), testEnv, "first\r\n")
			res, err := c.Send(context.Background(), ts.dest(), tt.env, []byte(tt.data))
			e := asError(t, err)
			if e.Stage != tt.wantStage || e.Code != tt.wantCode || e.Enhanced != tt.wantEnhanced || e.Permanent != tt.wantPermanent {
				t.Errorf("error = {Stage:%s Code:%d Enhanced:%s Permanent:%v}, want {%s %d %s %v}",
					e.Stage, e.Code, e.Enhanced, e.Permanent, tt.wantStage, tt.wantCode, tt.wantEnhanced, tt.wantPermanent)
			}
			if e.Temporary() == e.Permanent {
				t.Errorf("Temporary() = %v with Permanent = %v", e.Temporary(), e.Permanent)
			}
			if len(e.Rejected) != tt.wantRejected {
				t.Errorf("Rejected = %+v, want %d entries", e.Rejected, tt.wantRejected)
			}
			if res == nil {
				t.Fatal("Result is nil on failure")
			}
			if got := be.mails() - 1; got != tt.wantMails {
				t.Errorf("server saw %d MAIL commands for the refused message, want %d", got, tt.wantMails)
			}
			if n := len(be.messages()); n != 1 {
				t.Errorf("server stored %d messages, want only the first", n)
			}
			// The refusal left the session in step: the next message
			// reuses the same connection.
			if res := mustSend(t, c, ts.dest(), testEnv, "after\r\n"); !res.Reused {
				t.Error("message after a clean refusal did not reuse the connection")
			}
			if acc, _, _ := ts.counts(); acc != 1 {
				t.Errorf("server accepted %d connections, want 1", acc)
			}
		})
	}
}

func TestSendPartialRecipientRejection(t *testing.T) {
	be := scripted()
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, nil)
	env := Envelope{From: "s@c.test", To: []string{"ok1@mx.test", "rcpt550@mx.test", "ok2@mx.test", "rcpt451@mx.test"}}
	res := mustSend(t, c, ts.dest(), env, "hello\r\n")
	if want := []string{"ok1@mx.test", "ok2@mx.test"}; !slices.Equal(res.Accepted, want) {
		t.Errorf("Accepted = %q, want %q", res.Accepted, want)
	}
	want := []RcptError{
		{Rcpt: "rcpt550@mx.test", Code: 550, Enhanced: "5.1.1", Message: "no such user", Permanent: true},
		{Rcpt: "rcpt451@mx.test", Code: 451, Enhanced: "4.2.1", Message: "mailbox busy", Permanent: false},
	}
	if !slices.Equal(res.Rejected, want) {
		t.Errorf("Rejected = %+v, want %+v", res.Rejected, want)
	}
	if got := be.messages()[0].to; !slices.Equal(got, res.Accepted) {
		t.Errorf("server recipients = %q, want %q", got, res.Accepted)
	}
}

func TestSendHangingServerTimesOutAsTemporary(t *testing.T) {
	release := make(chan struct{})
	be := &backend{onMail: func(string) error { <-release; return nil }}
	ts := startServer(t, be, serverOpts{})
	t.Cleanup(func() { close(release) })
	c := newClient(t, func(o *Options) { o.ReadTimeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := c.Send(context.Background(), ts.dest(), testEnv, []byte("x\r\n"))
	e := asError(t, err)
	if e.Stage != StageMail || e.Permanent || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("error = %v (stage %s, permanent %v), want a temporary read timeout at mail", err, e.Stage, e.Permanent)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %v with a 200ms read timeout", d)
	}
	if s := c.Stats(); s.Open != 0 {
		t.Errorf("timed-out connection kept in the pool: %+v", s)
	}
}

func TestSendConnectionDroppedMidDataIsTemporary(t *testing.T) {
	be := &backend{onData: func(c *smtp.Conn, _ string, body io.Reader) error {
		// Read part of the body, then hang up.
		if _, err := io.ReadFull(body, make([]byte, 100)); err != nil {
			return err
		}
		return c.Close()
	}}
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, nil)
	_, err := c.Send(context.Background(), ts.dest(), testEnv, []byte(strings.Repeat("line of text\r\n", 1000)))
	e := asError(t, err)
	if e.Stage != StageData || e.Permanent || e.Err == nil {
		t.Errorf("error = %+v, want a temporary network error at data", e)
	}
	if s := c.Stats(); s.Open != 0 {
		t.Errorf("dropped connection kept in the pool: %+v", s)
	}
	if n := len(be.messages()); n != 0 {
		t.Errorf("server stored %d messages", n)
	}
}

func TestSendDialFailureIsTemporary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	c := newClient(t, nil)
	_, err = c.Send(context.Background(), Destination{Host: "127.0.0.1", Port: port}, testEnv, []byte("x"))
	e := asError(t, err)
	if e.Stage != StageDial || e.Permanent || e.Err == nil {
		t.Errorf("error = %+v, want a temporary dial error", e)
	}
	if s := c.Stats(); s.Open != 0 || s.Busy != 0 || len(s.Hosts) != 0 {
		t.Errorf("failed dial left pool state: %+v", s)
	}
}

func TestSendTLSModes(t *testing.T) {
	cert, roots := selfSigned(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	trusting := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tests := []struct {
		name        string
		mode        SSLMode
		startTLS    bool // server advertises STARTTLS
		implicitTLS bool
		clientTLS   *tls.Config
		wantTLS     bool
		wantStage   string // "" for success
	}{
		{"Auto upgrades when STARTTLS is offered", SSLAuto, true, false, trusting, true, ""},
		{"zero mode behaves as Auto", "", true, false, trusting, true, ""},
		{"Auto stays plain when STARTTLS is not offered", SSLAuto, false, false, trusting, false, ""},
		{"Auto fails temporarily when the handshake fails", SSLAuto, true, false, &tls.Config{MinVersion: tls.VersionTLS12}, false, StageStartTLS},
		{"STARTTLS required and offered", SSLStartTLS, true, false, trusting, true, ""},
		{"STARTTLS required but not offered fails temporarily", SSLStartTLS, false, false, trusting, false, StageStartTLS},
		{"None ignores an offered STARTTLS", SSLNone, true, false, trusting, false, ""},
		{"TLS is implicit from the first byte", SSLTLS, false, true, trusting, true, ""},
		{"TLS to a plain server fails temporarily", SSLTLS, false, false, trusting, false, StageDial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &backend{}
			o := serverOpts{}
			if tt.startTLS {
				o.startTLS = serverTLS
			}
			if tt.implicitTLS {
				o.implicitTLS = serverTLS
			}
			ts := startServer(t, be, o)
			c := newClient(t, func(o *Options) { o.TLSConfig = tt.clientTLS; o.OpenTimeout = time.Second })
			d := Destination{Host: "127.0.0.1", Port: ts.port, SSLMode: tt.mode, ServerName: "localhost"}
			res, err := c.Send(context.Background(), d, testEnv, []byte("secret\r\n"))
			if tt.wantStage != "" {
				e := asError(t, err)
				if e.Stage != tt.wantStage || e.Permanent {
					t.Fatalf("error = %v (stage %s permanent %v), want temporary at %s", err, e.Stage, e.Permanent, tt.wantStage)
				}
				if n := len(be.messages()); n != 0 {
					t.Errorf("server stored %d messages", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res.TLS != tt.wantTLS {
				t.Errorf("Result.TLS = %v, want %v", res.TLS, tt.wantTLS)
			}
			if tt.wantTLS && (res.TLSVersion != "TLS 1.3" || res.TLSCipher == "") {
				t.Errorf("TLS details = %q %q, want TLS 1.3 and a cipher", res.TLSVersion, res.TLSCipher)
			}
			if !tt.wantTLS && (res.TLSVersion != "" || res.TLSCipher != "") {
				t.Errorf("plain session reports TLS details %q %q", res.TLSVersion, res.TLSCipher)
			}
			if got := be.messages()[0].tls; got != tt.wantTLS {
				t.Errorf("server saw TLS = %v, want %v", got, tt.wantTLS)
			}
			// A reused TLS connection keeps reporting it.
			if res := mustSend(t, c, d, testEnv, "again\r\n"); !res.Reused || res.TLS != tt.wantTLS {
				t.Errorf("second send Reused=%v TLS=%v", res.Reused, res.TLS)
			}
		})
	}
}

func TestSendBindsLocalAddress(t *testing.T) {
	be := &backend{}
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, nil)
	d := ts.dest()
	d.LocalAddr = net.IPv4(127, 0, 0, 2)
	mustSend(t, c, d, testEnv, "x\r\n")
	if host, _, _ := net.SplitHostPort(be.messages()[0].remote); host != "127.0.0.2" {
		t.Errorf("server saw the client at %s, want 127.0.0.2", host)
	}
}

func TestSendReusesConnectionAndCountsMetrics(t *testing.T) {
	be := &backend{}
	ts := startServer(t, be, serverOpts{})
	reg := prometheus.NewPedanticRegistry()
	c := newClient(t, func(o *Options) { o.Registerer = reg })
	const n = 5
	for i := range n {
		res := mustSend(t, c, ts.dest(), testEnv, fmt.Sprintf("message %d\r\n", i))
		if res.Reused != (i > 0) {
			t.Errorf("send %d: Reused = %v", i, res.Reused)
		}
		if res.RemoteAddr != fmt.Sprintf("127.0.0.1:%d", ts.port) {
			t.Errorf("RemoteAddr = %q", res.RemoteAddr)
		}
	}
	if acc, _, _ := ts.counts(); acc != 1 {
		t.Errorf("server accepted %d connections for %d messages, want 1", acc, n)
	}
	if got := len(be.messages()); got != n {
		t.Errorf("server stored %d messages, want %d", got, n)
	}
	key := ts.dest().Key()
	if s := c.Stats(); s.Hosts[key] != (HostStats{Open: 1, Idle: 1}) || s.Open != 1 || s.Idle != 1 || s.Busy != 0 {
		t.Errorf("Stats = %+v", s)
	}
	if got := testutil.ToFloat64(c.m.opened); got != 1 {
		t.Errorf("connections_opened_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.m.reused); got != n-1 {
		t.Errorf("connections_reused_total = %v, want %d", got, n-1)
	}
	if got := testutil.ToFloat64(c.m.sent); got != n {
		t.Errorf("messages_total{sent} = %v, want %d", got, n)
	}
	if _, err := c.Send(context.Background(), ts.dest(), Envelope{From: "s@c.test"}, nil); err == nil {
		t.Fatal("Send without recipients succeeded")
	}
	if got := testutil.ToFloat64(c.m.hardFail); got != 1 {
		t.Errorf("messages_total{hard_fail} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "postal_smtpclient_busy_connections"); err != nil || n != 1 {
		t.Errorf("busy_connections series = %d (%v), want 1", n, err)
	}
	// A second client on the same registry shares the series.
	c2 := newClient(t, func(o *Options) { o.Registerer = reg })
	mustSend(t, c2, ts.dest(), testEnv, "from c2\r\n")
	if got := testutil.ToFloat64(c.m.sent); got != n+1 {
		t.Errorf("shared messages_total{sent} = %v, want %d", got, n+1)
	}
}

func TestSendRotatesConnectionAfterMaxMessages(t *testing.T) {
	be := &backend{}
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, func(o *Options) { o.MaxMessagesPerConn = 2 })
	for i := range 5 {
		mustSend(t, c, ts.dest(), testEnv, fmt.Sprintf("m%d\r\n", i))
	}
	if acc, _, _ := ts.counts(); acc != 3 {
		t.Errorf("server accepted %d connections for 5 messages at 2 per connection, want 3", acc)
	}
	// The two full connections were closed; only the third stays.
	ts.waitActive(t, 1)
}

func TestSendRespectsMaxConnsPerHost(t *testing.T) {
	const limit, senders = 3, 12
	gate := make(chan struct{})
	var mu sync.Mutex
	holding := 0
	be := &backend{onData: func(*smtp.Conn, string, io.Reader) error {
		mu.Lock()
		holding++
		mu.Unlock()
		<-gate
		return nil
	}}
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, func(o *Options) { o.MaxConnsPerHost = limit })
	errs := make(chan error, senders)
	for i := range senders {
		go func() {
			_, err := c.Send(context.Background(), ts.dest(), testEnv, fmt.Appendf(nil, "m%d\r\n", i))
			errs <- err
		}()
	}
	waitFor(t, "the first connections to block in DATA", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return holding == limit
	})
	if s := c.Stats().Hosts[ts.dest().Key()]; s.Busy != limit || s.Open != limit {
		t.Errorf("while blocked: host stats = %+v, want %d busy and open", s, limit)
	}
	// A caller whose context ends while waiting gives up with a temporary
	// error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := c.Send(ctx, ts.dest(), testEnv, []byte("late\r\n"))
	cancel()
	if e := asError(t, err); e.Stage != StageDial || e.Permanent || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting send error = %v, want temporary dial error wrapping the deadline", err)
	}
	close(gate)
	for range senders {
		if err := <-errs; err != nil {
			t.Errorf("Send: %v", err)
		}
	}
	acc, _, peak := ts.counts()
	if peak > limit || acc > limit {
		t.Errorf("server saw %d connections, %d at once; limit %d", acc, peak, limit)
	}
	if got := len(be.messages()); got != senders {
		t.Errorf("server stored %d messages, want %d", got, senders)
	}
}

func TestSendPipelinesWhenAdvertised(t *testing.T) {
	be := &backend{}
	ts := startServer(t, be, serverOpts{maxBytes: 1 << 20})
	rec := &recorder{}
	c := newClient(t, func(o *Options) { o.Dialer = rec.dial })
	env := Envelope{From: "s@c.test", To: []string{"a@mx.test", "b@mx.test"}}

	mustSend(t, c, ts.dest(), env, "one\r\n")
	writes := rec.take()
	envelope := "MAIL FROM:<s@c.test> SIZE=5\r\nRCPT TO:<a@mx.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n"
	if want := []string{"EHLO client.test\r\n", envelope, "one\r\n.\r\n"}; !slices.Equal(writes, want) {
		t.Errorf("first message writes = %q, want %q", writes, want)
	}
	mustSend(t, c, ts.dest(), env, "two\r\n")
	writes = rec.take()
	if want := []string{"RSET\r\n" + envelope, "two\r\n.\r\n"}; !slices.Equal(writes, want) {
		t.Errorf("reused connection writes = %q, want %q", writes, want)
	}
	if got := len(be.messages()); got != 2 {
		t.Errorf("server stored %d messages", got)
	}
}

func TestSendWithoutPipeliningWaitsForEachReply(t *testing.T) {
	rs := startRawServer(t, "220 raw.test ESMTP", "250-raw.test\r\n250 8BITMIME")
	rec := &recorder{}
	c := newClient(t, func(o *Options) { o.Dialer = rec.dial })
	d := Destination{Host: "127.0.0.1", Port: rs.port, SSLMode: SSLNone}
	env := Envelope{From: "s@c.test", To: []string{"a@mx.test", "b@mx.test"}}
	mustSend(t, c, d, env, "one\n")
	res := mustSend(t, c, d, env, "two\n")
	if res.Code != 250 || res.Enhanced != "2.0.0" || res.Message != "queued as RAW1" {
		t.Errorf("result reply = %d %q %q", res.Code, res.Enhanced, res.Message)
	}
	want := []string{
		"EHLO client.test\r\n",
		"MAIL FROM:<s@c.test>\r\n", "RCPT TO:<a@mx.test>\r\n", "RCPT TO:<b@mx.test>\r\n", "DATA\r\n", "one\r\n.\r\n",
		"RSET\r\n", "MAIL FROM:<s@c.test>\r\n", "RCPT TO:<a@mx.test>\r\n", "RCPT TO:<b@mx.test>\r\n", "DATA\r\n", "two\r\n.\r\n",
	}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Errorf("writes = %q, want %q", got, want)
	}
}

func TestSendFallsBackToHELO(t *testing.T) {
	rs := startRawServer(t, "220-raw.test\r\n220 old-fashioned", "502 5.5.1 EHLO not implemented")
	c := newClient(t, nil)
	d := Destination{Host: "127.0.0.1", Port: rs.port, SSLMode: SSLStartTLS}
	// HELO offers no STARTTLS, so a required STARTTLS fails...
	if _, err := c.Send(context.Background(), d, testEnv, []byte("x")); asError(t, err).Stage != StageStartTLS {
		t.Fatalf("error = %v, want starttls stage", err)
	}
	// ...and an opportunistic session delivers in plain text.
	d.SSLMode = SSLAuto
	mustSend(t, c, d, testEnv, "x")
	cmds := rs.commands()
	if !slices.Contains(cmds, "HELO client.test") || !slices.Contains(cmds, "MAIL FROM:<sender@client.test>") {
		t.Errorf("server commands = %q, want HELO then a plain MAIL FROM", cmds)
	}
}

func TestSendCancelAbortsPromptly(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	be := &backend{onData: func(_ *smtp.Conn, _ string, body io.Reader) error {
		// Take the whole body so the client is waiting for the final
		// reply, then never give it.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return err
		}
		entered <- struct{}{}
		<-release
		return nil
	}}
	ts := startServer(t, be, serverOpts{})
	t.Cleanup(func() { close(release) })
	c := newClient(t, func(o *Options) { o.ReadTimeout = time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, ts.dest(), testEnv, []byte("x\r\n"))
		done <- err
	}()
	<-entered
	start := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send did not return after cancellation")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send returned %v after cancellation", d)
	}
	e := asError(t, err)
	if !errors.Is(err, context.Canceled) || e.Permanent || e.Stage != StageData {
		t.Errorf("error = %v (stage %s permanent %v), want temporary data-stage cancellation", err, e.Stage, e.Permanent)
	}
	if s := c.Stats(); s.Open != 0 {
		t.Errorf("cancelled connection kept: %+v", s)
	}
}

func TestSendReplacesConnectionsClosedWhileIdle(t *testing.T) {
	gate := make(chan struct{})
	var mu sync.Mutex
	holding := 0
	be := &backend{onData: func(*smtp.Conn, string, io.Reader) error {
		mu.Lock()
		holding++
		mu.Unlock()
		<-gate
		return nil
	}}
	ts := startServer(t, be, serverOpts{})
	c := newClient(t, func(o *Options) { o.MaxConnsPerHost = 2 })
	// Two concurrent messages leave two idle connections.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Send(context.Background(), ts.dest(), testEnv, []byte("one\r\n"))
			errs <- err
		}()
	}
	waitFor(t, "two sessions in DATA", func() bool { mu.Lock(); defer mu.Unlock(); return holding == 2 })
	close(gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if s := c.Stats(); s.Idle != 2 {
		t.Fatalf("Stats = %+v, want two idle connections", s)
	}
	// The server drops both while they are idle.
	be.mu.Lock()
	for _, sc := range be.conns {
		_ = sc.Close()
	}
	be.mu.Unlock()
	ts.waitActive(t, 0)

	res := mustSend(t, c, ts.dest(), testEnv, "two\r\n")
	if res.Reused {
		t.Error("message reported as sent over a closed connection")
	}
	if acc, _, _ := ts.counts(); acc != 3 {
		t.Errorf("server accepted %d connections, want 3", acc)
	}
	if got := len(be.messages()); got != 3 {
		t.Errorf("server stored %d messages, want 3", got)
	}
	if s := c.Stats(); s.Open != 1 || s.Idle != 1 {
		t.Errorf("Stats = %+v, want only the new connection", s)
	}
}

func TestSendSessionOpeningRefusals(t *testing.T) {
	tests := []struct {
		name          string
		greeting      string
		ehlo          string
		wantStage     string
		wantCode      int
		wantPermanent bool
	}{
		{"554 greeting is permanent", "554 5.7.1 no service for you", "250 x", StageGreeting, 554, true},
		{"421 greeting is temporary", "421 4.3.2 busy", "250 x", StageGreeting, 421, false},
		{"421 to EHLO is temporary", "220 ok", "421 4.3.2 shutting down", StageEHLO, 421, false},
		{"malformed greeting is temporary", "hello there", "250 x", StageGreeting, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := startRawServer(t, tt.greeting, tt.ehlo)
			c := newClient(t, nil)
			_, err := c.Send(context.Background(), Destination{Host: "127.0.0.1", Port: rs.port, SSLMode: SSLNone}, testEnv, []byte("x"))
			e := asError(t, err)
			if e.Stage != tt.wantStage || e.Code != tt.wantCode || e.Permanent != tt.wantPermanent {
				t.Errorf("error = %v (stage %s code %d permanent %v), want %s %d %v",
					err, e.Stage, e.Code, e.Permanent, tt.wantStage, tt.wantCode, tt.wantPermanent)
			}
			if s := c.Stats(); s.Open != 0 {
				t.Errorf("failed session kept: %+v", s)
			}
		})
	}
}

func TestReapIdleClosesExpiredConnections(t *testing.T) {
	be := &backend{}
	ts := startServer(t, be, serverOpts{})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newClient(t, func(o *Options) { o.Now = clock; o.IdleTimeout = time.Hour })
	mustSend(t, c, ts.dest(), testEnv, "x\r\n")

	if err := c.reapIdle(now.Add(30 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Idle != 1 {
		t.Fatalf("connection reaped before its idle timeout: %+v", s)
	}
	if err := c.reapIdle(now.Add(time.Hour + time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Open != 0 || len(s.Hosts) != 0 {
		t.Errorf("after reaping: %+v, want nothing open and no hosts", s)
	}
	ts.waitActive(t, 0)
}

func TestCloseQuitsIdleConnectionsAndRefusesSends(t *testing.T) {
	be := &backend{}
	ts := startServer(t, be, serverOpts{})
	c := New(Options{HeloHostname: "client.test"})
	mustSend(t, c, ts.dest(), testEnv, "x\r\n")
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ts.waitActive(t, 0)
	_, err := c.Send(context.Background(), ts.dest(), testEnv, []byte("x"))
	if !errors.Is(err, ErrClosed) || asError(t, err).Permanent {
		t.Errorf("Send after Close = %v, want temporary ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
