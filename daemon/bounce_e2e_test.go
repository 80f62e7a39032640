package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// TestBouncesAreLinkedClassifiedAndRouted runs postald --role all: three
// messages go out to a sink that answers 250; then, as the remote MX would,
// a peer returns over SMTP to each message's envelope sender an RFC 3464
// hard bounce (5.1.1) and a qmail-style soft one (mailbox full) that quotes
// nothing of the message, and sends an auto-reply nothing links to the
// server's return path. Both originals end Bounced and fire MessageBounced
// to a test receiver; only the hard-bounced address is suppressed; the
// auto-reply reaches the __returnpath__ route's endpoint.
func TestBouncesAreLinkedClassifiedAndRouted(t *testing.T) {
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
	}
	var mu sync.Mutex
	got := map[string][][]byte{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], b)
		mu.Unlock()
	}))
	defer rcv.Close()
	bodies := func(path string) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return append([][]byte(nil), got[path]...)
	}

	postalctlJSON(t, in, nil, "org", "create", "acme")
	var srv struct{ Token string }
	postalctlJSON(t, in, &srv, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")
	postalctlJSON(t, in, nil, "webhook", "add", "acme/mail", rcv.URL+"/hook", "--events", "MessageBounced")
	postalctlJSON(t, in, nil, "route", "add", "acme/mail", "__returnpath__", "--endpoint", "http:"+rcv.URL+"/returnpath")

	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	for _, to := range []string{"gone@dest.test", "full@dest.test"} {
		if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", to, "Hello "+to); err != nil {
			t.Fatalf("send to %s: %v\n%s", to, err, p.stderr)
		}
	}
	sent := map[string]sunk{}
	for _, m := range snk.wait(t, 2, 60*time.Second) {
		sent[m.to[0]] = m
	}
	gone, full := sent["gone@dest.test"], sent["full@dest.test"]
	if !strings.HasPrefix(gone.from, srv.Token+"+") || !strings.HasSuffix(gone.from, "@rp.postal.test") || full.from == gone.from {
		t.Fatalf("envelope senders %q, %q; want %s+<message token>@rp.postal.test each", gone.from, full.from, srv.Token)
	}

	// The remote MX returns both, each to its envelope sender.
	headers := gone.data[:bytes.Index(gone.data, []byte("\r\n\r\n"))+4]
	hard, err := dsn.Build(dsn.Params{ReportingMTA: "mx.dest.test", From: "MAILER-DAEMON@mx.dest.test", To: gone.from,
		Date: time.Now(), MessageID: "dsn-1@mx.dest.test", OriginalHeaders: headers,
		Recipients: []dsn.Recipient{{Address: "gone@dest.test", Action: dsn.ActionFailed, Status: "5.1.1",
			DiagnosticCode: "smtp; 550 5.1.1 <gone@dest.test>: Recipient address rejected: User unknown"}}})
	if err != nil {
		t.Fatal(err)
	}
	soft := "From: MAILER-DAEMON@mx.dest.test\r\nTo: " + full.from + "\r\nSubject: failure notice\r\n\r\n" +
		"Hi. This is the qmail-send program at mx.dest.test.\r\n" +
		"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n" +
		"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n" +
		"<full@dest.test>:\r\nRemote host said: 552 5.2.2 Mailbox full\r\n"
	autoReply := "From: bob@dest.test\r\nTo: " + srv.Token + "@rp.postal.test\r\nSubject: Out of office\r\n" +
		"Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
	for _, b := range []struct{ to, data string }{{gone.from, string(hard)}, {full.from, soft},
		{srv.Token + "@rp.postal.test", autoReply}} {
		if err := returnMail(in.smtpPort, b.to, b.data); err != nil {
			t.Fatalf("bounce to %s: %v\n%s", b.to, err, p.stderr)
		}
	}

	waitFor(t, "two MessageBounced webhooks and the auto-reply", 60*time.Second, func() bool {
		return len(bodies("/hook")) == 2 && len(bodies("/returnpath")) == 1
	})
	bounced := map[string]bool{}
	for _, b := range bodies("/hook") {
		var env struct {
			Event   string
			Payload struct {
				OriginalMessage struct{ To string } `json:"original_message"`
				Bounce          struct{ From string }
			}
		}
		if err := json.Unmarshal(b, &env); err != nil || env.Event != "MessageBounced" {
			t.Fatalf("webhook %s: %v", b, err)
		}
		bounced[env.Payload.OriginalMessage.To] = true
	}
	if !bounced["gone@dest.test"] || !bounced["full@dest.test"] {
		t.Errorf("MessageBounced for %v, want gone@ and full@", bounced)
	}
	if rp := bodies("/returnpath")[0]; !bytes.Contains(rp, []byte("Out of office")) {
		t.Errorf("return-path route got %s", rp)
	}

	var list []struct {
		RcptTo string `json:"rcpt_to"`
		Status string
		Scope  string
	}
	waitFor(t, "originals Bounced", 30*time.Second, func() bool {
		postalctlJSON(t, in, &list, "message", "ls", "acme/mail")
		n := 0
		for _, m := range list {
			if m.Scope == "outgoing" && m.Status == "Bounced" {
				n++
			}
		}
		return n == 2
	})
	var sups []struct{ Address, Reason string }
	postalctlJSON(t, in, &sups, "suppression", "ls", "acme/mail")
	if len(sups) != 1 || sups[0].Address != "gone@dest.test" || sups[0].Reason != "hard bounce" {
		t.Errorf("suppressions = %+v, want only gone@dest.test (hard bounce)", sups)
	}
}

// returnMail delivers a bounce as a remote MX would: null sender, no AUTH.
func returnMail(port int, to, data string) error {
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.dest.test"); err != nil {
		return err
	}
	if err := c.SendMail("", []string{to}, strings.NewReader(data)); err != nil {
		return err
	}
	return c.Quit()
}
