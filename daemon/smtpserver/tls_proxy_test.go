package smtpserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

// writeCert writes a fresh self-signed certificate for cn and its key to
// certPath and keyPath.
func writeCert(t *testing.T, cn, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsEnv starts an env with STARTTLS on a certificate for "one.test".
func tlsEnv(t *testing.T, mutate ...func(*smtpserver.Options)) (*env, string, string) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "smtp.cert"), filepath.Join(dir, "smtp.key")
	writeCert(t, "one.test", certPath, keyPath)
	e := newEnv(t, append([]func(*smtpserver.Options){func(o *smtpserver.Options) {
		o.Config.TLSEnabled = true
		o.Config.TLSCertificatePath, o.Config.TLSPrivateKeyPath = certPath, keyPath
	}}, mutate...)...)
	return e, certPath, keyPath
}

// startTLS upgrades a raw session after EHLO and returns the peer's
// certificate name.
func (r *raw) startTLS() string {
	r.t.Helper()
	r.send("STARTTLS")
	r.expect(220, "")
	tc := tls.Client(r.conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test server's self-signed certificate
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	r.conn, r.tp = tc, textproto.NewConn(tc)
	return tc.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestStartTLSAndAuthPolicy(t *testing.T) {
	t.Run("a loopback client may AUTH before STARTTLS and gets ESMTPSA after it", func(t *testing.T) {
		e, _, _ := tlsEnv(t)
		c := e.dial()
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Fatal("STARTTLS not offered")
		}
		if !c.SupportsAuth("PLAIN") {
			t.Fatal("AUTH not offered to a loopback client before STARTTLS")
		}
		c, err := smtp.DialStartTLS(e.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("STARTTLS"); ok {
			t.Fatal("STARTTLS offered again inside TLS")
		}
		if err := c.Auth(sasl.NewPlainClient("", "u", e.fx.SMTPKey)); err != nil {
			t.Fatal(err)
		}
		if err := send(c, "a@example.com", []string{"b@example.org"}, message("a@example.com", "over tls")); err != nil {
			t.Fatal(err)
		}
		ms := e.storedMessages()
		if len(ms) != 1 || !ms[0].ReceivedWithSSL {
			t.Fatalf("stored %d messages; want one received with SSL", len(ms))
		}
		raw, _ := e.st.RawMessage(context.Background(), ms[0].RawMessageID)
		if !strings.Contains(string(raw), "with ESMTPSA\r\n\t(using TLSv1.3 with cipher TLS_") {
			t.Fatalf("Received field lacks the TLS details:\n%s", raw)
		}
	})
	t.Run("a remote client must STARTTLS before AUTH", func(t *testing.T) {
		e, _, _ := tlsEnv(t, func(o *smtpserver.Options) { o.Config.ProxyProtocol = true })
		r := e.rawDial()
		r.send("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25")
		r.expect(220, "")
		r.send("EHLO client.test")
		if ehlo := r.expect(250, "STARTTLS"); strings.Contains(ehlo, "AUTH") {
			t.Fatalf("AUTH offered in the clear to a remote client:\n%s", ehlo)
		}
		r.send("AUTH PLAIN " + b64("\x00u\x00"+e.fx.SMTPKey))
		r.expect(530, "5.7.0 Must issue a STARTTLS command first")
		if cn := r.startTLS(); cn != "one.test" {
			t.Fatalf("certificate %q, want one.test", cn)
		}
		r.send("EHLO client.test")
		r.expect(250, "AUTH PLAIN LOGIN")
		r.send("AUTH PLAIN " + b64("\x00u\x00"+e.fx.SMTPKey))
		r.expect(235, "")
	})
	t.Run("without TLS configured a remote client may AUTH in the clear, as in Postal", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) { o.Config.ProxyProtocol = true })
		r := e.rawDial()
		r.send("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25")
		r.expect(220, "")
		r.send("EHLO client.test")
		if ehlo := r.expect(250, "AUTH PLAIN LOGIN"); strings.Contains(ehlo, "STARTTLS") {
			t.Fatalf("STARTTLS offered without a certificate:\n%s", ehlo)
		}
		r.send("STARTTLS")
		r.expect(502, "")
		r.send("AUTH PLAIN " + b64("\x00u\x00"+e.fx.SMTPKey))
		r.expect(235, "")
	})
}

func TestReloadSwapsTheCertificateForNewConnectionsOnly(t *testing.T) {
	e, certPath, keyPath := tlsEnv(t)
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	old := e.rawDial()
	old.expect(220, "")
	old.send("EHLO client.test")
	old.expect(250, "")
	if cn := old.startTLS(); cn != "one.test" {
		t.Fatalf("certificate %q, want one.test", cn)
	}

	writeCert(t, "two.test", certPath, keyPath)
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh := e.rawDial()
	fresh.expect(220, "")
	fresh.send("EHLO client.test")
	fresh.expect(250, "")
	if cn := fresh.startTLS(); cn != "two.test" {
		t.Fatalf("after Reload a new connection got %q, want two.test", cn)
	}

	if err := os.WriteFile(keyPath, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Reload(); err == nil {
		t.Fatal("Reload accepted a broken key")
	}
	kept := e.rawDial()
	kept.expect(220, "")
	kept.send("EHLO client.test")
	kept.expect(250, "")
	if cn := kept.startTLS(); cn != "two.test" {
		t.Fatalf("after a failed Reload a new connection got %q, want two.test kept", cn)
	}

	// The connection opened before the reload still works.
	old.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
	old.expect(250, "")
	old.expect(250, "")
	old.expect(250, "")
	old.expect(354, "")
	old.send("Subject: old tls", "", "still here", ".")
	old.expect(250, "")
	if ms := e.storedMessages(); len(ms) != 1 || !ms[0].ReceivedWithSSL {
		t.Fatalf("stored %d messages, want the one sent over the old TLS connection", len(ms))
	}
}

func TestBrokenCertificateFailsNew(t *testing.T) {
	cfg, postal, dns := testConfig()
	cfg.TLSEnabled = true
	cfg.TLSCertificatePath = filepath.Join(t.TempDir(), "missing.cert")
	cfg.TLSPrivateKeyPath = filepath.Join(t.TempDir(), "missing.key")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = smtpserver.New(smtpserver.Options{Config: cfg, Postal: postal, DNS: dns, Store: storeStub{}, Intake: &recorder{}, Listener: ln})
	if err == nil || !strings.Contains(err.Error(), "missing.cert") {
		t.Fatalf("New with a missing certificate: %v, want an error naming the file", err)
	}
}

// storeStub satisfies smtpserver.Store for tests that never get as far as a
// lookup.
type storeStub struct{ smtpserver.Store }

func TestProxyProtocol(t *testing.T) {
	v2 := func(ip string) string {
		h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
			SourceAddr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}, DestinationAddr: &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 25}}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	v1 := func(ip string) string { return "PROXY TCP4 " + ip + " 192.0.2.1 40000 25\r\n" }

	for _, tc := range []struct {
		name   string
		header func(ip string) string
	}{
		{"a v1 header names the client", v1},
		{"a v2 header names the client", v2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *smtpserver.Options) { o.Config.ProxyProtocol = true })
			const allowed, other = "203.0.113.7", "198.51.100.9"
			e.credential(store.CredentialSMTPIP, allowed+"/32")
			// A proxied address that is not loopback and holds no
			// credential may not relay.
			r := e.rawDial()
			if _, err := r.conn.Write([]byte(tc.header(other))); err != nil {
				t.Fatal(err)
			}
			r.expect(220, hostname)
			r.send("EHLO client.test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.org>")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(530, "Authentication required")
			// The address the SMTP-IP credential names relays, and the
			// Received field names it.
			r2 := e.rawDial()
			_, _ = r2.conn.Write([]byte(tc.header(allowed)))
			r2.expect(220, "")
			r2.send("EHLO client.test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.org>", "DATA")
			r2.expect(250, "")
			r2.expect(250, "")
			r2.expect(250, "")
			r2.expect(354, "")
			r2.send("From: a@example.com", "", "hi", ".")
			r2.expect(250, "")
			ms := e.storedMessages()
			if len(ms) != 1 || ms[0].Scope != store.ScopeOutgoing {
				t.Fatalf("stored %d messages, want one outgoing", len(ms))
			}
			raw, _ := e.st.RawMessage(context.Background(), ms[0].RawMessageID)
			if !strings.Contains(string(raw), "["+allowed+"]") {
				t.Fatalf("Received does not name %s:\n%s", allowed, raw)
			}
		})
	}
	t.Run("a connection without a header is refused", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) { o.Config.ProxyProtocol = true })
		r := e.rawDial()
		r.send("EHLO client.test")
		r.expect(502, "Proxy error")
		if !r.closed() {
			t.Fatal("connection without a PROXY header left open")
		}
	})
	t.Run("the per-address limit counts proxied addresses", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) {
			o.Config.ProxyProtocol = true
			o.Config.MaxConnectionsPerIP = 1
		})
		a := e.rawDial()
		_, _ = a.conn.Write([]byte(v1("203.0.113.7")))
		a.expect(220, "")
		b := e.rawDial()
		_, _ = b.conn.Write([]byte(v1("203.0.113.8")))
		b.expect(220, "")
		c := e.rawDial()
		_, _ = c.conn.Write([]byte(v1("203.0.113.7")))
		c.expect(421, "from your address")
	})
}

// A go-smtp client against the PROXY-enabled server, to check that the
// header is all the client side needs to add.
func TestProxyProtocolWithGoSMTPClient(t *testing.T) {
	e := newEnv(t, func(o *smtpserver.Options) { o.Config.ProxyProtocol = true })
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("PROXY TCP4 127.0.0.9 127.0.0.1 40000 25\r\n")); err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", e.fx.SMTPKey)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.com", []string{"b@example.org"}, message("a@example.com", "proxied")); err != nil {
		t.Fatal(err)
	}
	if ms := e.storedMessages(); len(ms) != 1 {
		t.Fatalf("stored %d messages, want 1", len(ms))
	}
}
