package outbound

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// received is one message as the test SMTP server saw it.
type received struct {
	from, to string
	data     []byte
	remote   string
	tls      bool
}

// mailServer is an in-process go-smtp server whose replies are scripted by
// the recipient's local part:
//
//	temp*  451 4.3.0 at RCPT        perm*  550 5.1.1 at RCPT
//	big*   552 5.3.4 after DATA      hang*  never answers RCPT
//	drop*  closes the connection mid-DATA
//	anything else is accepted (250).
type mailServer struct {
	addr    string
	port    int
	discard bool

	mu    sync.Mutex
	msgs  []received
	conns int
	stop  chan struct{}
}

func startMailServer(t testing.TB, withTLS bool) *mailServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms := &mailServer{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, stop: make(chan struct{})}
	srv := smtp.NewServer(ms)
	srv.Domain = "mx.dest.test"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	if withTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(ms.stop)
		_ = srv.Close()
		<-done
	})
	return ms
}

func (ms *mailServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ms.mu.Lock()
	ms.conns++
	ms.mu.Unlock()
	return &mailSession{ms: ms, c: c}, nil
}

func (ms *mailServer) received() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.msgs...)
}

func (ms *mailServer) connections() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.conns
}

type mailSession struct {
	ms   *mailServer
	c    *smtp.Conn
	from string
	to   string
}

func (s *mailSession) Reset()        { s.from, s.to = "", "" }
func (s *mailSession) Logout() error { return nil }

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	local, _, _ := strings.Cut(to, "@")
	switch {
	case strings.HasPrefix(local, "temp"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	case strings.HasPrefix(local, "perm"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	case strings.HasPrefix(local, "hang"):
		<-s.ms.stop
		return errors.New("stopped")
	}
	s.to = to
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	local, _, _ := strings.Cut(s.to, "@")
	if strings.HasPrefix(local, "drop") {
		buf := make([]byte, 64)
		_, _ = io.ReadFull(r, buf)
		_ = s.c.Conn().Close()
		return errors.New("dropped")
	}
	if s.ms.discard {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if strings.HasPrefix(local, "big") {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	}
	_, isTLS := s.c.TLSConnectionState()
	s.ms.mu.Lock()
	s.ms.msgs = append(s.ms.msgs, received{from: s.from, to: s.to, data: data, remote: s.c.Conn().RemoteAddr().String(), tls: isTLS})
	s.ms.mu.Unlock()
	return nil
}

func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx1.dest.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"mx1.dest.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// recordingBounces keeps the bounces that committed outcomes carried.
type recordingBounces struct {
	mu   sync.Mutex
	subs []store.Submission
}

func (b *recordingBounces) add(subs ...store.Submission) {
	b.mu.Lock()
	b.subs = append(b.subs, subs...)
	b.mu.Unlock()
}

func (b *recordingBounces) all() []store.Submission {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]store.Submission(nil), b.subs...)
}

// env is a sending domain (example.com, DKIM key published), a destination
// domain (dest.test) served by an in-process SMTP server, a DNS server for
// both, a store, a Redis queue and a Processor with a fixed clock.
type env struct {
	t       testing.TB
	s       *store.Store
	fx      storetest.Fixture
	dns     *dnstest.Server
	mail    *mailServer
	q       *queue.Queue
	bounces *recordingBounces
	key     *rsa.PrivateKey
	now     time.Time
	o       Options
	p       *Processor
}

type envOptions struct {
	store   *store.Store
	tls     bool
	keyBits int
	tune    func(*Options)
}

func newEnv(t testing.TB, eo envOptions) *env {
	t.Helper()
	if eo.store == nil {
		eo.store = storetest.SQLite(t)
	}
	if eo.keyBits == 0 {
		eo.keyBits = 1024
	}
	key, err := dkim.GenerateKey(eo.keyBits)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, s: eo.store, key: key, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.fx = storetest.NewFixture(t, e.s, "example.com", string(dkim.EncodePrivateKey(key)))
	e.mail = startMailServer(t, eo.tls)
	e.dns = dnstest.NewServer(t,
		dnstest.MX("dest.test", 10, "mx1.dest.test"),
		dnstest.A("mx1.dest.test", "127.0.0.1"),
		dnstest.TXT(dkim.RecordName("postal-ABCDEF", "example.com"), dkim.RecordValue(&key.PublicKey)),
	)
	rc, keys := redistest.New(t)
	e.q = queue.New(queue.Options{Client: rc, Keys: keys})
	e.bounces = &recordingBounces{}
	res, err := resolver.New(resolver.Options{Nameservers: []string{e.dns.Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	def := config.Defaults()
	def.DNS.ReturnPathDomain = "rp.postal.test"
	def.DNS.HeloHostname = "out.postal.test"
	def.Postal.SMTPHostname = "postal.test"
	def.SMTPClient.OpenTimeout = 2
	def.SMTPClient.ReadTimeout = 0.5
	def.SMTPClient.DestinationPort = e.mail.port
	e.o = Options{Postal: def.Postal, DNS: def.DNS, SMTPClient: def.SMTPClient, Store: e.s, Resolver: res,
		Now: func() time.Time { return e.now }}
	if eo.tune != nil {
		eo.tune(&e.o)
	}
	e.p, err = New(e.o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.p.Close() })
	return e
}

// rawMessage is a small message from sender@example.com.
func rawMessage(to, subject string) []byte {
	return []byte("From: Sender <sender@example.com>\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + subject + "@example.com>\r\nX-Postal-MsgID: stale\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello " + to + ".\r\n.leading dot\r\n")
}

type msgOpt func(*store.NewMessage)

func asBounce(m *store.NewMessage) { m.Bounce = true }

// queueMessage stores and queues one outgoing message to rcpt and returns
// its row claimed by "w1".
func (e *env) queueMessage(rcpt string, opts ...msgOpt) *store.QueuedMessage {
	e.t.Helper()
	rows := e.queueMessages([]string{rcpt}, opts...)
	return rows[0]
}

func (e *env) queueMessages(rcpts []string, opts ...msgOpt) []*store.QueuedMessage {
	e.t.Helper()
	ctx := context.Background()
	var subs []store.Submission
	for i, r := range rcpts {
		_, dom, _ := strings.Cut(r, "@")
		nm := store.NewMessage{ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r, MailFrom: "sender@example.com",
			Subject: fmt.Sprintf("m%d", i), MessageID: fmt.Sprintf("<m%d@example.com>", i), DomainID: e.fx.Domain.ID,
			CredentialID: e.fx.Credential.ID, Queue: true, QueueDomain: dom}
		for _, o := range opts {
			o(&nm)
		}
		subs = append(subs, store.Submission{Raw: rawMessage(r, fmt.Sprintf("m%d", i)), Messages: []store.NewMessage{nm}})
	}
	acc, err := e.s.InsertSubmissions(ctx, subs)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]int64, len(acc))
	for i, a := range acc {
		ids[i] = a[0].QueuedID
	}
	return e.claim(ids)
}

func (e *env) claim(ids []int64) []*store.QueuedMessage {
	e.t.Helper()
	now := time.Now()
	rows, err := e.s.ClaimQueued(context.Background(), ids, "w1", now.Add(time.Second), now.Add(time.Hour))
	if err != nil || len(rows) != len(ids) {
		e.t.Fatalf("claim %v: got %d rows, %v", ids, len(rows), err)
	}
	return rows
}

// handle runs the processor and commits its outcomes, which must all
// apply, then dispatches the new webhook requests as the worker does.
func (e *env) handle(rows ...*store.QueuedMessage) []store.Outcome {
	e.t.Helper()
	ctx := context.Background()
	outs := e.p.Handle(ctx, rows)
	if len(outs) != len(rows) {
		e.t.Fatalf("Handle returned %d outcomes for %d rows", len(outs), len(rows))
	}
	res, err := e.s.CommitOutcomes(ctx, outs)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, ok := range res.Applied {
		if !ok || res.Fallback[i] != "" {
			e.t.Fatalf("outcome %d (%+v) was not applied as given: %q %v", i, outs[i], res.Fallback[i], res.Failed[i])
		}
		e.bounces.add(outs[i].Effects().Bounces...)
	}
	jobs := make([]queue.Job, len(res.Webhooks))
	for i, id := range res.Webhooks {
		jobs[i] = queue.Job{ID: id}
	}
	if err := e.q.Enqueue(ctx, queue.Webhooks, jobs...); err != nil {
		e.t.Fatal(err)
	}
	return outs
}

func (e *env) message(id int64) *store.Message {
	e.t.Helper()
	m, err := e.s.Message(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) deliveries(id int64) []*store.Delivery {
	e.t.Helper()
	d, err := e.s.Deliveries(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// rr is a shorthand for dnstest records in tests.
func rr(line string) dns.RR { return dnstest.RR(line) }
