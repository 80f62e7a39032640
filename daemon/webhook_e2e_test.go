package daemon_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// TestSentMailFiresASignedWebhook runs postald --role all: a message sent
// through it fires MessageSent to a subscribed webhook, and the receiver
// verifies both signatures with the key the web server publishes.
func TestSentMailFiresASignedWebhook(t *testing.T) {
	_, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
	}
	type delivery struct {
		body               []byte
		kid, sig1, sig256  string
		contentType, agent string
	}
	got := make(chan delivery, 4)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{b, r.Header.Get("X-Postal-Signature-KID"), r.Header.Get("X-Postal-Signature"),
			r.Header.Get("X-Postal-Signature-256"), r.Header.Get("Content-Type"), r.Header.Get("User-Agent")}
	}))
	defer rcv.Close()
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")
	postalctlJSON(t, in, nil, "webhook", "add", "acme/mail", rcv.URL+"/hook", "--events", "MessageSent")

	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", "bob@dest.test", "hooked"); err != nil {
		t.Fatalf("send: %v\n%s", err, p.stderr)
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(60 * time.Second):
		t.Fatalf("no webhook within 60 s\n%s", p.stderr)
	}

	// The receiver's side: the key from the web server's JWKS, nothing else.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/jwks.json", in.webPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct{ Keys []struct{ N, E, Kid string } }
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0].Kid != d.kid {
		t.Fatalf("jwks = %+v, %v; request kid %q", jwks, err, d.kid)
	}
	n, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	s1, _ := base64.StdEncoding.DecodeString(d.sig1)
	h1 := sha1.Sum(d.body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, h1[:], s1); err != nil {
		t.Errorf("X-Postal-Signature: %v", err)
	}
	s256, _ := base64.StdEncoding.DecodeString(d.sig256)
	h256 := sha256.Sum256(d.body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h256[:], s256); err != nil {
		t.Errorf("X-Postal-Signature-256: %v", err)
	}
	var env struct {
		Event   string
		UUID    string
		Payload struct {
			Status  string
			Message struct{ To, Subject string }
		}
	}
	if err := json.Unmarshal(d.body, &env); err != nil || env.Event != "MessageSent" || env.Payload.Status != "Sent" ||
		env.Payload.Message.To != "bob@dest.test" || env.UUID == "" {
		t.Errorf("webhook body = %s, %v", d.body, err)
	}
	if d.contentType != "application/json" || len(d.agent) < 7 || d.agent[:7] != "Postal/" {
		t.Errorf("content type %q, user agent %q", d.contentType, d.agent)
	}
	var attempts []struct {
		Result     string
		StatusCode int `json:"status_code"`
		UUID       string
	}
	waitFor(t, "the attempt to be logged", 30*time.Second, func() bool {
		postalctlJSON(t, in, &attempts, "webhook", "requests", "acme/mail")
		return len(attempts) == 1
	})
	if attempts[0].Result != "ok" || attempts[0].StatusCode != 200 || attempts[0].UUID != env.UUID {
		t.Errorf("attempt log = %+v", attempts)
	}
}
