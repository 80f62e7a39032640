package inbound

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/endpoint"
	"github.com/postalgo/postal/daemon/outbound"
	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// mailSink is an SMTP server that records what it receives and whether the
// session ran over TLS.
type mailSink struct {
	mu   sync.Mutex
	got  []received
	addr string
}

type received struct {
	from, rcpt string
	tls        bool
	data       string
}

type sinkSession struct {
	s    *mailSink
	tls  bool
	from string
	rcpt string
}

func (s *sinkSession) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpt = to
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.got = append(s.s.got, received{from: s.from, rcpt: s.rcpt, tls: s.tls, data: string(b)})
	s.s.mu.Unlock()
	return nil
}
func (s *sinkSession) Reset()        {}
func (s *sinkSession) Logout() error { return nil }

func (s *mailSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, ok := c.TLSConnectionState()
	return &sinkSession{s: s, tls: ok}, nil
}

func (s *mailSink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// startSink listens on 127.0.0.1:0; starttls advertises STARTTLS, implicit
// speaks TLS from the first byte.
func startSink(t *testing.T, cert *tls.Certificate, starttls, implicit bool) *mailSink {
	t.Helper()
	sink := &mailSink{}
	srv := smtp.NewServer(sink)
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{*cert}}
	if starttls {
		srv.TLSConfig = cfg
	}
	if implicit {
		ln = tls.NewListener(ln, cfg)
	}
	sink.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sink
}

func selfSigned(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink.test"},
		DNSNames: []string{"sink.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// loopback resolves every MX to mx.<domain> at 127.0.0.1.
type loopback struct{}

func (loopback) MX(_ context.Context, domain string) ([]resolver.MX, error) {
	return []resolver.MX{{Host: "mx." + domain, Preference: 10}}, nil
}
func (loopback) IPs(context.Context, string) ([]net.IP, error) {
	return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
}

func TestSMTPAndAddressEndpoints(t *testing.T) {
	cert := selfSigned(t)
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e := &env{t: t, s: s, fx: storetest.NewFixture(t, s, "example.com", ""), now: time.Now()}
		plainTLS := startSink(t, cert, true, false) // offers STARTTLS
		plainOnly := startSink(t, cert, false, false)
		implicit := startSink(t, cert, false, true)
		port := func(addr string) int {
			return portOf(t, addr)
		}
		proc, err := outbound.New(outbound.Options{Store: s, Resolver: loopback{},
			SMTPClient: config.SMTPClient{DestinationPort: port(plainOnly.addr)}})
		if err != nil {
			t.Fatal(err)
		}
		defer proc.Close()
		client, _ := endpoint.New(endpoint.Options{Signer: testKey(t)})
		h, err := New(Options{Store: s, HTTP: client, SMTP: proc, ReturnPathDomain: "rp.postal.test", WebHostname: "postal.test"})
		if err != nil {
			t.Fatal(err)
		}
		send := func(name string, ep store.NewEndpoint) (*store.Message, store.Committed) {
			t.Helper()
			r, err := s.CreateRoute(ctx, e.fx.Server.ID, store.NewRoute{DomainID: e.fx.Domain.ID, Name: name,
				Mode: store.RouteModeEndpoint, Endpoint: &ep})
			if err != nil {
				t.Fatal(err)
			}
			q := e.store([]byte(incomingRaw), store.NewMessage{Scope: store.ScopeIncoming, RcptTo: name + "+tag@example.com",
				MailFrom: "sender@far.test", RouteID: r.ID, DomainID: r.DomainID, QueueDomain: "example.com"})
			c, err := s.CommitOutcomes(ctx, h.Handle(ctx, []*store.QueuedMessage{q}))
			if err != nil || !c.Applied[0] {
				t.Fatalf("commit %v %v", c, err)
			}
			return e.message(q.MessageID), c
		}
		cases := []struct {
			name    string
			sink    *mailSink
			mode    string
			wantTLS bool
		}{
			{"none", plainTLS, store.SSLModeNone, false},
			{"auto", plainTLS, store.SSLModeAuto, true},
			{"auto-plain", plainOnly, store.SSLModeAuto, false},
			{"starttls", plainTLS, store.SSLModeSTARTTLS, true},
			{"tls", implicit, store.SSLModeTLS, true},
		}
		for _, c := range cases {
			t.Run("smtp "+c.name, func(t *testing.T) {
				before := len(c.sink.received())
				m, _ := send("s-"+c.name, store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "127.0.0.1",
					Port: port(c.sink.addr), SSLMode: c.mode})
				got := c.sink.received()
				if m.Status != store.StatusSent || len(got) != before+1 {
					t.Fatalf("status %s, received %d", m.Status, len(got)-before)
				}
				r := got[len(got)-1]
				if r.tls != c.wantTLS || r.rcpt != "s-"+c.name+"+tag@example.com" ||
					r.from != e.fx.Server.Token+"@rp.postal.test" || !strings.Contains(r.data, "Subject: Hello route") {
					t.Errorf("received %+v", r)
				}
			})
		}
		t.Run("smtp STARTTLS never falls back to plain text", func(t *testing.T) {
			before := len(plainOnly.received())
			m, c := send("s-strict", store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "127.0.0.1",
				Port: port(plainOnly.addr), SSLMode: store.SSLModeSTARTTLS})
			if m.Status != store.StatusSoftFail || len(plainOnly.received()) != before || len(c.Queued) != 0 {
				t.Errorf("status %s, received %d", m.Status, len(plainOnly.received())-before)
			}
		})
		t.Run("address endpoint goes by MX", func(t *testing.T) {
			before := len(plainOnly.received())
			m, _ := send("fwd", store.NewEndpoint{Type: store.EndpointAddress, Address: "someone@elsewhere.test"})
			got := plainOnly.received()
			if m.Status != store.StatusSent || len(got) != before+1 || got[len(got)-1].rcpt != "someone@elsewhere.test" {
				t.Fatalf("status %s received %v", m.Status, got[before:])
			}
		})
	})
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
