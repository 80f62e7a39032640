package daemon_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// TestRoutedMailReachesHTTPEndpoints runs postald --role all: an MX peer
// (no AUTH) sends to route addresses; the HTTP receiver verifies each
// request with the key from the web server's JWKS and gets the Hash/JSON
// and RawMessage/form payloads; a 500 leaves the message SoftFail (queued
// for a retry), a 429 fails it without a bounce, a 404 fails it with a
// bounce that reaches the sender's MX.
func TestRoutedMailReachesHTTPEndpoints(t *testing.T) {
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("far.test.", 10, "mx.far.test."), dnstest.A("mx.far.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
	}
	type request struct {
		body        []byte
		sig256, kid string
		contentType string
	}
	var mu sync.Mutex
	got := map[string][]request{}
	status := map[string]int{"/flaky": 500, "/busy": 429, "/gone": 404}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], request{b, r.Header.Get("X-Postal-Signature-256"),
			r.Header.Get("X-Postal-Signature-KID"), r.Header.Get("Content-Type")})
		code := status[r.URL.Path]
		mu.Unlock()
		if code == 0 {
			code = 200
		}
		w.WriteHeader(code)
	}))
	defer rcv.Close()
	requests := func(path string) []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), got[path]...)
	}

	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	postalctlJSON(t, in, nil, "route", "add", "acme/mail", "hash@example.com", "--endpoint", "http:"+rcv.URL+"/hash")
	postalctlJSON(t, in, nil, "route", "add", "acme/mail", "raw@example.com", "--endpoint", "http:"+rcv.URL+"/raw",
		"--format", "raw", "--encoding", "form")
	for _, p := range []string{"flaky", "busy", "gone"} {
		postalctlJSON(t, in, nil, "route", "add", "acme/mail", p+"@example.com", "--endpoint", "http:"+rcv.URL+"/"+p)
	}

	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	for _, to := range []string{"hash+tag@example.com", "raw@example.com", "flaky@example.com", "busy@example.com", "gone@example.com"} {
		if err := peerSend(in.smtpPort, "sender@far.test", to, "Inbound "+to); err != nil {
			t.Fatalf("send to %s: %v\n%s", to, err, p.stderr)
		}
	}
	waitFor(t, "both payloads", 60*time.Second, func() bool { return len(requests("/hash")) > 0 && len(requests("/raw")) > 0 })

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/jwks.json", in.webPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct{ Keys []struct{ N, E, Kid string } }
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks = %+v, %v", jwks, err)
	}
	n, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	verify := func(r request) {
		t.Helper()
		sig, _ := base64.StdEncoding.DecodeString(r.sig256)
		sum := sha256.Sum256(r.body)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil || r.kid != jwks.Keys[0].Kid {
			t.Errorf("signature: %v (kid %q)", err, r.kid)
		}
	}

	h := requests("/hash")[0]
	verify(h)
	var hash map[string]any
	if err := json.Unmarshal(h.body, &hash); err != nil || h.contentType != "application/json" {
		t.Fatalf("hash payload %s: %v (%s)", h.body, err, h.contentType)
	}
	if hash["rcpt_to"] != "hash+tag@example.com" || hash["mail_from"] != "sender@far.test" ||
		hash["subject"] != "Inbound hash+tag@example.com" || hash["spam_status"] != "NotChecked" {
		t.Errorf("hash payload = %v", hash)
	}

	r := requests("/raw")[0]
	verify(r)
	form, err := url.ParseQuery(string(r.body))
	if err != nil || r.contentType != "application/x-www-form-urlencoded" || form.Get("base64") != "true" {
		t.Fatalf("raw payload %s: %v", r.body, err)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(form.Get("message"), "\n", ""))
	if !strings.Contains(string(raw), "Subject: Inbound raw@example.com") || !strings.Contains(string(raw), "Received: from") {
		t.Errorf("raw message = %q", raw)
	}

	// The 404's bounce reaches the sender; the 429 gets none.
	msgs := snk.wait(t, 1, 60*time.Second)
	if len(msgs) != 1 || msgs[0].to[0] != "sender@far.test" || !strings.Contains(string(msgs[0].data), "Mail Delivery Failed (Inbound gone@example.com)") ||
		!strings.Contains(string(msgs[0].data), "Original Message.eml") {
		t.Fatalf("bounces = %+v", msgs)
	}
	var list []struct {
		RcptTo string `json:"rcpt_to"`
		Status string
		Scope  string
	}
	want := map[string]string{"flaky@example.com": "SoftFail", "busy@example.com": "HardFail", "gone@example.com": "HardFail",
		"hash+tag@example.com": "Sent", "raw@example.com": "Sent"}
	waitFor(t, "final statuses", 30*time.Second, func() bool {
		postalctlJSON(t, in, &list, "message", "ls", "acme/mail")
		ok := 0
		for _, m := range list {
			if m.Scope == "incoming" && want[m.RcptTo] == m.Status {
				ok++
			}
		}
		return ok == len(want)
	})
	// Every failed message's outcome is committed now, its bounce with it:
	// one outgoing message (the 404's bounce), none for the 429.
	outgoing := 0
	for _, m := range list {
		if m.Scope == "outgoing" {
			outgoing++
		}
	}
	if outgoing != 1 {
		t.Errorf("%d bounces stored, want 1 (the 429 must not bounce)", outgoing)
	}
}

// peerSend delivers one message as an MX peer would: no AUTH.
func peerSend(port int, from, to, subject string) error {
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.far.test"); err != nil {
		return err
	}
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(to, "@", ".") + "@far.test>\r\n\r\nHello endpoint.\r\n"
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
