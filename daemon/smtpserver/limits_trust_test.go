package smtpserver_test

import (
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

// proxyV1 is a PROXY protocol v1 header naming src as the client.
func proxyV1(src string) string {
	if strings.Contains(src, ":") {
		return "PROXY TCP6 " + src + " 2001:db8::25 40000 25\r\n"
	}
	return "PROXY TCP4 " + src + " 192.0.2.1 40000 25\r\n"
}

// proxied dials from the loopback address from (a trusted proxy by
// default) and sends a PROXY header naming client.
func (e *env) proxied(from, client string) *raw {
	e.t.Helper()
	r := e.rawDialFrom(from)
	if _, err := r.conn.Write([]byte(proxyV1(client))); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func TestProxyHeadersAreBelievedOnlyFromTrustedPeers(t *testing.T) {
	const claimed = "203.0.113.7" // holds an SMTP-IP credential: may relay
	trustOnly := func(nets ...string) func(o *smtpserver.Options) {
		return func(o *smtpserver.Options) {
			o.Config.ProxyProtocol = true
			o.Config.ProxyProtocolTrusted = nets
		}
	}
	t.Run("an untrusted peer claiming a credential's address is refused before the greeting", func(t *testing.T) {
		e := newEnv(t, trustOnly("127.0.0.2"))
		e.credential(store.CredentialSMTPIP, claimed)
		r := e.proxied("127.0.0.1", claimed)
		r.expect(554, "5.7.1")
		if !r.closed() {
			t.Fatal("connection from an untrusted peer left open")
		}
		e.assertNothingStored()
		// The trusted proxy's header is believed: the claimed address relays.
		ok := e.proxied("127.0.0.2", claimed)
		ok.expect(220, "")
		ok.send("EHLO client.test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.org>")
		ok.expect(250, "")
		ok.expect(250, "")
		ok.expect(250, "")
	})
	t.Run("an untrusted peer is refused even without a header", func(t *testing.T) {
		e := newEnv(t, trustOnly("10.0.0.0/8", "2001:db8::/32"))
		r := e.rawDialFrom("127.0.0.1")
		r.expect(554, "5.7.1")
		if !r.closed() {
			t.Fatal("connection from an untrusted peer left open")
		}
	})
	t.Run("a trusted peer must send a header", func(t *testing.T) {
		e := newEnv(t, trustOnly("127.0.0.0/8"))
		r := e.rawDialFrom("127.0.0.3")
		r.send("EHLO client.test")
		r.expect(502, "Proxy error")
		if !r.closed() {
			t.Fatal("connection without a PROXY header left open")
		}
	})
	t.Run("loopback is trusted by default", func(t *testing.T) {
		e := newEnv(t, trustOnly())
		e.credential(store.CredentialSMTPIP, claimed)
		r := e.proxied("127.0.0.5", claimed)
		r.expect(220, "")
		r.send("EHLO client.test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.org>")
		r.expect(250, "")
		r.expect(250, "")
		r.expect(250, "")
	})
}

func TestNewRefusesABadTrustedNetwork(t *testing.T) {
	cfg, postal, dns := testConfig()
	cfg.ProxyProtocol = true
	cfg.ProxyProtocolTrusted = []string{"127.0.0.1", "haproxy.internal"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = smtpserver.New(smtpserver.Options{Config: cfg, Postal: postal, DNS: dns, Store: storeStub{}, Intake: &recorder{}, Listener: ln})
	want := `smtpserver: smtp_server.proxy_protocol_trusted[1]: "haproxy.internal" is not an IP address or CIDR range`
	if err == nil || err.Error() != want {
		t.Fatalf("New = %v, want %q", err, want)
	}
}

// Per-client limits count an IPv6 client by its /64 and an IPv4-mapped
// address as the IPv4 address (client addresses come from PROXY headers,
// the only way to have many of them in a test).
func TestPerClientLimitsCountIPv6By64(t *testing.T) {
	t.Run("connections per client", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) {
			o.Config.ProxyProtocol = true
			o.Config.MaxConnectionsPerIP = 1
		})
		steps := []struct {
			client string
			code   int
		}{
			{"2001:db8:1:2::1", 220},
			{"2001:db8:1:2:ffff:ffff:ffff:fffe", 421}, // same /64
			{"2001:db8:1:3::1", 220},                  // next /64
			{"203.0.113.7", 220},
			{"::ffff:203.0.113.7", 421}, // the same IPv4 client
			{"203.0.113.8", 220},
		}
		for _, s := range steps {
			r := e.proxied("127.0.0.1", s.client)
			if c, msg := r.reply(); c != s.code {
				t.Fatalf("connection from %s: %d %q, want %d", s.client, c, msg, s.code)
			}
		}
	})
	t.Run("AUTH failures per client", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) {
			o.Config.ProxyProtocol = true
			o.Config.AuthMaxFailures = 2
			o.Config.MaxBadCommands = 100
		})
		a := e.proxied("127.0.0.1", "2001:db8:1:2::1")
		a.expect(220, "")
		a.send("EHLO client.test")
		a.expect(250, "")
		for range 2 {
			a.send("AUTH PLAIN " + b64("\x00u\x00wrong-key-wrong-key"))
			a.expect(535, "")
		}
		for _, tc := range []struct {
			client string
			code   int
		}{
			{"2001:db8:1:2:dead:beef::1", 454}, // same /64
			{"2001:db8:1:3::1", 235},
		} {
			r := e.proxied("127.0.0.1", tc.client)
			r.expect(220, "")
			r.send("EHLO client.test", "AUTH PLAIN "+b64("\x00u\x00"+e.fx.SMTPKey))
			r.expect(250, "")
			r.expect(tc.code, "")
		}
	})
}

// Fifty AUTH attempts sent at once from one address get exactly the
// limit's worth of password checks between them: checking and counting an
// attempt is one step, so no attempt slips through while the others are
// checked. Spread over two smtp-server processes sharing a Redis window,
// the step is the Redis script; in one process without Redis, its own
// window's lock.
func TestParallelAuthAttemptsGetNoFreeTries(t *testing.T) {
	t.Run("two processes sharing Redis", func(t *testing.T) {
		rc, keys := redistest.New(t)
		shared := func(o *smtpserver.Options) {
			w, err := ratelimit.New(ratelimit.Options{Client: rc, Keys: keys, Name: "smtp-auth-failures", Max: 5, Window: 10 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			o.AuthFailures = w
		}
		parallelAuth(t, newEnv(t, authLimit, shared), newEnv(t, authLimit, shared))
	})
	t.Run("one process on its own", func(t *testing.T) {
		parallelAuth(t, newEnv(t, authLimit))
	})
}

// authLimit allows 5 AUTH failures per 10 minutes and 50 connections per
// client.
func authLimit(o *smtpserver.Options) {
	o.Config.AuthMaxFailures = 5
	o.Config.AuthFailureWindow = 600
	o.Config.MaxConnectionsPerIP = 50
}

// parallelAuth sends 50 AUTH attempts with a wrong key at once, spread
// over envs, and checks that 5 were answered 535 and the rest 454.
func parallelAuth(t *testing.T, envs ...*env) {
	const limit, attempts = 5, 50

	start := make(chan struct{})
	codes := make(chan int, attempts)
	errs := make(chan error, attempts)
	var ready, done sync.WaitGroup
	for i := range attempts {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c, err := authAttempt(envs[i%len(envs)].addr, &ready, start)
			if err != nil {
				errs <- err
				return
			}
			codes <- c
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	close(codes)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for c := range codes {
		counts[c]++
	}
	if counts[535] != limit || counts[454] != attempts-limit {
		t.Fatalf("replies %v; want %d × 535 (password checked) and %d × 454 (limited)", counts, limit, attempts-limit)
	}
}

// authAttempt connects to addr, says EHLO, marks itself ready, waits for
// start and sends one AUTH with a wrong key; it returns the reply code.
func authAttempt(addr string, ready *sync.WaitGroup, start <-chan struct{}) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		ready.Done()
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	setup := func() error {
		if _, _, err := tp.ReadResponse(220); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		if err := tp.PrintfLine("EHLO client.test"); err != nil {
			return err
		}
		if _, _, err := tp.ReadResponse(250); err != nil {
			return fmt.Errorf("EHLO: %w", err)
		}
		return nil
	}
	err = setup()
	ready.Done()
	if err != nil {
		return 0, err
	}
	<-start
	if err := tp.PrintfLine("AUTH PLAIN %s", b64("\x00u\x00wrong-key-wrong-key")); err != nil {
		return 0, err
	}
	c, _, err := tp.ReadResponse(0)
	if err != nil {
		return 0, fmt.Errorf("AUTH reply: %w", err)
	}
	return c, nil
}

// With Redis gone, the shared AUTH failure count fails open to each
// process's own window, never to no limit.
func TestAuthLimitHoldsWithRedisDown(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb, err := redisconn.New(redisconn.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	w, err := ratelimit.New(ratelimit.Options{Client: rdb, Keys: redisconn.NewKeys("auth-down"), Name: "smtp-auth-failures", Max: 2, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	e := newEnv(t, func(o *smtpserver.Options) {
		o.Config.AuthMaxFailures = 2
		o.Config.MaxBadCommands = 100
		o.AuthFailures = w
	})
	r := failAuth(e, 2)
	r.send("AUTH PLAIN " + b64("\x00u\x00"+e.fx.SMTPKey))
	r.expect(454, "Too many failed")
	if !strings.Contains(e.logs.String(), "shared AUTH failure count unavailable") {
		t.Fatalf("no warning about the shared count:\n%s", e.logs.String())
	}
}

// Refusals for these limits show in the metrics with their own labels.
func TestLimitRefusalsAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *smtpserver.Options) {
		o.Registerer = reg
		o.Config.ProxyProtocol = true
		o.Config.ProxyProtocolTrusted = []string{"127.0.0.2"}
		o.Config.MaxCommands = 5
		o.Config.DataTimeout = 0.3
	})
	untrusted := e.rawDialFrom("127.0.0.1")
	untrusted.expect(554, "")

	chatty := e.proxied("127.0.0.2", "203.0.113.7")
	chatty.expect(220, "")
	chatty.send("NOOP", "NOOP", "NOOP", "NOOP", "NOOP")
	for range 5 {
		chatty.expect(250, "")
	}
	chatty.expect(421, "Too many commands")

	slow := e.proxied("127.0.0.2", "203.0.113.8")
	slow.expect(220, "")
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	slow.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "BDAT 3")
	_, _ = slow.conn.Write([]byte("abc"))
	for range 4 {
		slow.expect(250, "")
	}
	slow.expect(421, "4.4.2")

	for _, tc := range []struct {
		metric string
		labels map[string]string
	}{
		{"postal_smtp_server_refused_connections_total", map[string]string{"reason": "proxy_untrusted"}},
		{"postal_smtp_server_client_errors", map[string]string{"error": "too-many-commands"}},
		{"postal_smtp_server_client_errors", map[string]string{"error": "data-timeout"}},
	} {
		if got := counterValue(t, reg, tc.metric, tc.labels); got != 1 {
			t.Errorf("%s%v = %v, want 1", tc.metric, tc.labels, got)
		}
	}
}

// After STARTTLS the 421 for too many commands comes through TLS.
func TestTooManyCommandsIsAnsweredThroughTLS(t *testing.T) {
	e, _, _ := tlsEnv(t, func(o *smtpserver.Options) { o.Config.MaxCommands = 4 })
	r := e.rawDial()
	r.expect(220, "")
	r.send("EHLO client.test") // 1
	r.expect(250, "STARTTLS")
	r.startTLS()               // 2
	r.send("EHLO client.test") // 3
	r.expect(250, "")
	r.send("NOOP") // 4
	r.expect(250, "")
	r.expect(421, "4.7.0 Too many commands")
	if !r.closed() {
		t.Fatal("the session is still open")
	}
}
