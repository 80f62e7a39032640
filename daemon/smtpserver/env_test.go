package smtpserver_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

const (
	hostname         = "mx.postal.test"
	returnPathDomain = "rp.postal.test"
	routeDomain      = "routes.postal.test"
	clientRDNS       = "client.example.net"
)

// env is a running SMTP server on 127.0.0.1:0 over a real SQLite store,
// a real intake and a real Redis queue, with the fixture of storetest
// (org acme, server acme/mail, verified domain example.com, SMTP
// credential).
type env struct {
	t     testing.TB
	st    *store.Store
	fx    storetest.Fixture
	q     *queue.Queue
	srv   *smtpserver.Server
	addr  string
	rec   *recorder
	ready atomic.Pointer[error]
	logs  *logBuffer
	// stop ends Run and returns its result (once; later calls repeat it).
	stop func() error
}

// recorder passes submissions to the real intake and remembers what was
// accepted, so tests find the stored rows.
type recorder struct {
	inner smtpserver.Intake
	fail  atomic.Pointer[error]

	mu       sync.Mutex
	accepted [][]store.Accepted
	calls    int
}

func (r *recorder) Submit(ctx context.Context, sub store.Submission) ([]store.Accepted, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	if p := r.fail.Load(); p != nil {
		return nil, *p
	}
	acc, err := r.inner.Submit(ctx, sub)
	if err == nil {
		r.mu.Lock()
		r.accepted = append(r.accepted, acc)
		r.mu.Unlock()
	}
	return acc, err
}

func (r *recorder) all() [][]store.Accepted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]store.Accepted(nil), r.accepted...)
}

func testConfig() (config.SMTPServer, config.Postal, config.DNS) {
	d := config.Defaults()
	d.Postal.SMTPHostname = hostname
	d.DNS.ReturnPathDomain = returnPathDomain
	d.DNS.RouteDomain = routeDomain
	d.DNS.CustomReturnPathPrefix = "psrp"
	return d.SMTPServer, d.Postal, d.DNS
}

// newEnv starts an env; mutate adjusts the server options before New.
func newEnv(t testing.TB, mutate ...func(*smtpserver.Options)) *env {
	t.Helper()
	e := &env{t: t, st: storetest.SQLite(t), logs: &logBuffer{}}
	e.fx = storetest.NewFixture(t, e.st, "example.com", "")
	rc, keys := redistest.New(t)
	e.q = queue.New(queue.Options{Client: rc, Keys: keys})
	in := intake.New(intake.Options{Store: e.st, Queue: e.q})
	e.rec = &recorder{inner: in}

	ctx, cancel := context.WithCancel(context.Background())
	intakeDone := make(chan error, 1)
	go func() { intakeDone <- in.Run(ctx) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, postal, dns := testConfig()
	o := smtpserver.Options{
		Config: cfg, Postal: postal, DNS: dns,
		Store:  e.st,
		Intake: e.rec,
		Ready: func() error {
			if p := e.ready.Load(); p != nil {
				return *p
			}
			return nil
		},
		Log:        e.logs.logger(),
		Listener:   ln,
		LookupAddr: func(context.Context, string) ([]string, error) { return []string{clientRDNS + "."}, nil },
	}
	for _, m := range mutate {
		m(&o)
	}
	srv, err := smtpserver.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.addr = srv, srv.Addr().String()
	srvCtx, stop := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(srvCtx) }()
	e.stop = sync.OnceValue(func() error {
		stop()
		select {
		case err := <-runDone:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not return within 30s of its context ending")
		}
	})
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		cancel()
		<-intakeDone
		if strings.Contains(e.logs.String(), "panic") {
			t.Errorf("the server recovered a panic:\n%s", e.logs.String())
		}
	})
	return e
}

// logBuffer collects the server's logs for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dial opens a go-smtp client session that has said EHLO.
func (e *env) dial() *smtp.Client {
	e.t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("client.test"); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// dialAuth opens a session authenticated with the fixture's credential.
func (e *env) dialAuth() *smtp.Client {
	e.t.Helper()
	c := e.dial()
	if err := c.Auth(sasl.NewPlainClient("", "anyone", e.fx.SMTPKey)); err != nil {
		e.t.Fatalf("AUTH: %v", err)
	}
	return c
}

// send runs one transaction; it returns the first refusal (nil when the
// message was accepted).
func send(c *smtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	return w.Close()
}

// code is the SMTP reply code of err (0 when err is not an SMTP reply).
func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func message(from, subject string) string {
	return "From: " + from + "\r\nTo: someone@example.org\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
}

// storedMessages loads every message the recorder saw accepted, in order.
func (e *env) storedMessages() []*store.Message {
	e.t.Helper()
	var ids []int64
	for _, sub := range e.rec.all() {
		for _, a := range sub {
			ids = append(ids, a.MessageID)
		}
	}
	ms, err := e.st.Messages(context.Background(), ids)
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

// assertNothingStored checks the database itself, not only the recorder.
func (e *env) assertNothingStored() {
	e.t.Helper()
	ctx := context.Background()
	q, err := e.st.QueuedMessages(ctx, 0, 10)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(q) != 0 {
		e.t.Fatalf("%d queued messages stored, want none", len(q))
	}
	if _, err := e.st.RawMessage(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("a raw message is stored (err %v), want none", err)
	}
	if _, err := e.st.Message(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("a message row is stored (err %v), want none", err)
	}
}

// raw is a plain-text SMTP client for scripts go-smtp's client will not
// send.
type raw struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func (e *env) rawDial() *raw {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := &raw{t: e.t, conn: conn, tp: textproto.NewConn(conn)}
	return r
}

// reply reads one (possibly multi-line) reply.
func (r *raw) reply() (int, string) {
	r.t.Helper()
	c, msg, err := r.tp.ReadResponse(0)
	if err != nil && c == 0 {
		r.t.Fatalf("reading reply: %v", err)
	}
	return c, msg
}

// expect reads a reply and checks its code and that it contains text.
func (r *raw) expect(wantCode int, text string) string {
	r.t.Helper()
	c, msg := r.reply()
	if c != wantCode || !strings.Contains(msg, text) {
		r.t.Fatalf("reply %d %q, want %d containing %q", c, msg, wantCode, text)
	}
	return msg
}

func (r *raw) send(lines ...string) {
	r.t.Helper()
	if _, err := io.WriteString(r.conn, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// closed reports whether the server closed the connection (EOF or reset
// within the deadline).
func (r *raw) closed() bool {
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := r.tp.R.ReadString('\n')
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// b64 is s in base64, as SASL responses are sent.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// atomicTime is an injectable clock tests move by hand.
type atomicTime struct{ v atomic.Int64 }

func (a *atomicTime) set(t time.Time) { a.v.Store(t.UnixNano()) }
func (a *atomicTime) get() time.Time  { return time.Unix(0, a.v.Load()).UTC() }
