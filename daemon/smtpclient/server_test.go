package smtpclient

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// received is one message as a test server saw it.
type received struct {
	from   string
	to     []string
	data   []byte
	body   smtp.BodyType
	utf8   bool
	size   int64
	tls    bool
	remote string
}

// backend is a scripted go-smtp backend. Zero hooks accept everything.
type backend struct {
	onMail func(from string) error
	onRcpt func(to string) error
	// onData runs first in DATA and may read part or all of the body; the
	// rest is read afterwards, and a non-nil error then refuses the message.
	onData func(c *smtp.Conn, from string, body io.Reader) error
	// discard skips recording (benchmarks).
	discard bool

	mu        sync.Mutex
	msgs      []received
	mailCalls int
	conns     []*smtp.Conn
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
	return &session{be: b, c: c}, nil
}

// messages returns a copy of what was received so far.
func (b *backend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

func (b *backend) mails() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mailCalls
}

type session struct {
	be  *backend
	c   *smtp.Conn
	cur received
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.be.mu.Lock()
	s.be.mailCalls++
	s.be.mu.Unlock()
	if s.be.onMail != nil {
		if err := s.be.onMail(from); err != nil {
			return err
		}
	}
	s.cur = received{from: from}
	if opts != nil {
		s.cur.body, s.cur.utf8, s.cur.size = opts.Body, opts.UTF8, opts.Size
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.onRcpt != nil {
		if err := s.be.onRcpt(to); err != nil {
			return err
		}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	var hookErr error
	if s.be.onData != nil {
		hookErr = s.be.onData(s.c, s.cur.from, r)
	}
	if s.be.discard && hookErr == nil {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if hookErr != nil {
		return hookErr
	}
	m := s.cur
	m.data = data
	_, m.tls = s.c.TLSConnectionState()
	m.remote = s.c.Conn().RemoteAddr().String()
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, m)
	s.be.mu.Unlock()
	return nil
}

// testServer is a go-smtp server on 127.0.0.1:0 that counts connections.
type testServer struct {
	*backend
	srv  *smtp.Server
	port int

	mu        sync.Mutex
	accepted  int
	active    int
	maxActive int
}

// serverOpts tune startServer.
type serverOpts struct {
	maxBytes    int64
	startTLS    *tls.Config // advertise STARTTLS
	implicitTLS *tls.Config // TLS from the first byte
	smtpUTF8    bool
	readTimeout time.Duration
}

func startServer(t testing.TB, be *backend, o serverOpts) *testServer {
	t.Helper()
	ts := &testServer{backend: be}
	srv := smtp.NewServer(be)
	srv.Domain = "mx.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.MaxMessageBytes = o.maxBytes
	srv.TLSConfig = o.startTLS
	srv.EnableSMTPUTF8 = o.smtpUTF8
	srv.ReadTimeout = o.readTimeout
	ts.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts.port = l.Addr().(*net.TCPAddr).Port
	var ln net.Listener = &countingListener{Listener: l, ts: ts}
	if o.implicitTLS != nil {
		ln = tls.NewListener(ln, o.implicitTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ts
}

// dest is a plain-text destination for ts.
func (ts *testServer) dest() Destination {
	return Destination{Host: "127.0.0.1", Port: ts.port, SSLMode: SSLNone}
}

// counts returns accepted and currently open connections and the peak.
func (ts *testServer) counts() (accepted, active, maxActive int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.accepted, ts.active, ts.maxActive
}

// waitActive polls until the number of open server-side connections is n.
func (ts *testServer) waitActive(t testing.TB, n int) {
	t.Helper()
	waitFor(t, "server connections open", func() bool {
		_, a, _ := ts.counts()
		return a == n
	})
}

type countingListener struct {
	net.Listener
	ts *testServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.ts.mu.Lock()
	l.ts.accepted++
	l.ts.active++
	l.ts.maxActive = max(l.ts.maxActive, l.ts.active)
	l.ts.mu.Unlock()
	return &countedConn{Conn: c, ts: l.ts}, nil
}

type countedConn struct {
	net.Conn
	ts   *testServer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.ts.mu.Lock()
		c.ts.active--
		c.ts.mu.Unlock()
	})
	return c.Conn.Close()
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// newClient returns a client with short timeouts, closed at cleanup.
func newClient(t testing.TB, mutate func(*Options)) *Client {
	t.Helper()
	o := Options{HeloHostname: "client.test", OpenTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&o)
	}
	c := New(o)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// selfSigned returns a certificate for localhost/127.0.0.1 and a pool that
// trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// recorder is a Dialer that keeps every Write the client makes.
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, r: r}, nil
}

// take returns the writes so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.writes
	r.writes = nil
	return w
}

type recordingConn struct {
	net.Conn
	r *recorder
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.writes = append(c.r.writes, string(p))
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// rawServer is a hand-written SMTP server for behaviours go-smtp cannot
// produce (no PIPELINING, EHLO refused). It answers every session with the
// given greeting and EHLO reply, accepts MAIL/RCPT/RSET/HELO, takes DATA, and
// records each command line it reads.
type rawServer struct {
	port int

	mu    sync.Mutex
	lines []string
	data  []string
}

func startRawServer(t testing.TB, greeting, ehloReply string) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawServer{port: l.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	conns := make(map[net.Conn]struct{})
	var cmu sync.Mutex
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cmu.Lock()
			conns[c] = struct{}{}
			cmu.Unlock()
			wg.Go(func() { rs.serve(c, greeting, ehloReply) })
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
	return rs
}

func (rs *rawServer) serve(c net.Conn, greeting, ehloReply string) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) bool {
		_, err := io.WriteString(c, s+"\r\n")
		return err == nil
	}
	if !say(greeting) {
		return
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		rs.mu.Lock()
		rs.lines = append(rs.lines, line)
		rs.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		var ok bool
		switch {
		case verb == "EHLO":
			ok = say(ehloReply)
		case verb == "QUIT":
			say("221 bye")
			return
		case verb == "DATA":
			if !say("354 go ahead") {
				return
			}
			var body strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			rs.mu.Lock()
			rs.data = append(rs.data, body.String())
			rs.mu.Unlock()
			ok = say("250 2.0.0 queued as RAW1")
		default:
			ok = say("250 2.0.0 ok")
		}
		if !ok {
			return
		}
	}
}

func (rs *rawServer) commands() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.lines...)
}
