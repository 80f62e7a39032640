package outbound

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/libcrypto"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/resolver"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/webhook"
)

func TestOutcomeFollowsTheRemoteReply(t *testing.T) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		rcpt       string
		status     string
		output     string // substring of the delivery output
		details    string // prefix of the delivery details
		retry      bool
		suppressed bool
		bounced    bool
	}{
		{rcpt: "ok@dest.test", status: store.StatusSent, output: "250", details: "Message for ok@dest.test accepted by mx1.dest.test:"},
		{rcpt: "temp@dest.test", status: store.StatusSoftFail, output: "451 4.3.0 Try again later", details: "Temporary SMTP delivery error", retry: true},
		{rcpt: "perm@dest.test", status: store.StatusHardFail, output: "550 5.1.1 No such user here", details: "Permanent SMTP delivery error", suppressed: true, bounced: true},
		{rcpt: "big@dest.test", status: store.StatusHardFail, output: "552 5.3.4 Message too big", details: "Permanent SMTP delivery error", suppressed: true, bounced: true},
		{rcpt: "hang@dest.test", status: store.StatusSoftFail, output: "", details: "Temporary SMTP delivery error", retry: true},
		{rcpt: "drop@dest.test", status: store.StatusSoftFail, output: "", details: "Temporary SMTP delivery error", retry: true},
	}
	for _, c := range cases {
		t.Run(c.rcpt, func(t *testing.T) {
			before := len(e.bounces.all())
			row := e.queueMessage(c.rcpt)
			out := e.handle(row)[0]
			if out.Status() != c.status || out.Retries() != c.retry {
				t.Fatalf("outcome = %s retry=%v (%+v), want %s retry=%v", out.Status(), out.Retries(), out.Delivery(), c.status, c.retry)
			}
			if c.retry && !out.RetryAfter().Equal(e.now.Add(5*time.Minute)) {
				t.Errorf("RetryAfter = %v, want now + 5 min", out.RetryAfter())
			}
			m := e.message(row.MessageID)
			if m.Status != c.status {
				t.Errorf("message status = %s, want %s", m.Status, c.status)
			}
			ds := e.deliveries(row.MessageID)
			if len(ds) != 1 || ds[0].Status != c.status || !strings.HasPrefix(ds[0].Details, c.details) || !strings.Contains(ds[0].Output, c.output) {
				t.Fatalf("deliveries = %+v, want one %s %q... output ~%q", ds, c.status, c.details, c.output)
			}
			if c.status == store.StatusSent && ds[0].Time <= 0 {
				t.Errorf("delivery time = %v, want > 0", ds[0].Time)
			}
			sl, err := e.s.ActiveSuppressions(context.Background(), e.fx.Server.ID, []string{c.rcpt}, e.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := sl[c.rcpt] != nil; got != c.suppressed {
				t.Errorf("suppressed = %v, want %v", got, c.suppressed)
			}
			if c.suppressed && !sl[c.rcpt].KeepUntil.Equal(e.now.Add(30*24*time.Hour)) {
				t.Errorf("keep_until = %v, want now + 30 days", sl[c.rcpt].KeepUntil)
			}
			if got := len(e.bounces.all()) - before; got != map[bool]int{true: 1, false: 0}[c.bounced] {
				t.Errorf("%d bounces submitted, want bounced=%v", got, c.bounced)
			}
			q, err := e.s.QueuedMessages(context.Background(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			kept := false
			for _, r := range q {
				if r.ID == row.ID && r.MessageID == row.MessageID { // SQLite may reuse a deleted row's id
					kept = true
					if r.Attempts != 1 || !r.RetryAfter.Equal(out.RetryAfter()) {
						t.Errorf("queued row = attempts %d retry %v", r.Attempts, r.RetryAfter)
					}
				}
			}
			if kept != c.retry {
				t.Errorf("queued row kept = %v, want %v", kept, c.retry)
			}
		})
	}
}

// TestSentMessageIsRewrittenAndSigned signs with crypto/rsa and with the
// system's libcrypto (what postald uses): both signatures must verify.
func TestSentMessageIsRewrittenAndSigned(t *testing.T) {
	t.Run("crypto_rsa", func(t *testing.T) { testSentMessage(t, nil) })
	// A KeyHolder that refuses every key: the message is signed anyway.
	t.Run("refused_by_key_holder", func(t *testing.T) { testSentMessage(t, refusingKeys{}) })
	t.Run("libcrypto", func(t *testing.T) {
		lib, err := libcrypto.Open()
		if err != nil {
			// daemon/libcrypto's own tests fail when a cgo build finds none.
			t.Skipf("no libcrypto: %v", err)
		}
		testSentMessage(t, lib)
	})
}

func testSentMessage(t *testing.T, keys KeyHolder) {
	e := newEnv(t, envOptions{keyBits: 2048, tune: func(o *Options) { o.Keys = keys }})
	row := e.queueMessage("ok@dest.test")
	if out := e.handle(row)[0]; out.Status() != store.StatusSent {
		t.Fatalf("outcome %+v", out.Delivery())
	}
	got := e.mail.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages", len(got))
	}
	m := e.message(row.MessageID)
	// The envelope sender names the message (+token); the Resent-Sender
	// header is the server's return path, shared by all its messages.
	wantFrom := e.fx.Server.Token + "@rp.postal.test"
	if envFrom := e.fx.Server.Token + "+" + m.Token + "@rp.postal.test"; got[0].from != envFrom || got[0].to != "ok@dest.test" {
		t.Errorf("envelope = %q -> %q, want %q -> ok@dest.test", got[0].from, got[0].to, envFrom)
	}
	data := got[0].data
	if !bytes.HasPrefix(data, []byte("X-Postal-MsgID: "+m.Token+"\r\nDKIM-Signature: ")) {
		t.Errorf("message starts %q", data[:min(len(data), 80)])
	}
	if bytes.Contains(data, []byte("X-Postal-MsgID: stale")) {
		t.Error("the stale X-Postal-MsgID was kept")
	}
	if !bytes.Contains(data, []byte("\r\nResent-Sender: "+wantFrom+"\r\n")) {
		t.Error("no Resent-Sender header with the return path")
	}
	res, err := resolver.New(resolver.Options{Nameservers: []string{e.dns.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(data), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return res.TXT(context.Background(), name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.com" {
		t.Fatalf("verifications = %+v", verifs)
	}
	signed := strings.Join(verifs[0].HeaderKeys, ":")
	for _, h := range []string{"from", "to", "subject", "resent-sender", "message-id"} {
		if !strings.Contains(strings.ToLower(signed), h) {
			t.Errorf("signed headers %q miss %s", signed, h)
		}
	}
}

func TestRetryScheduleAndLastAttempt(t *testing.T) {
	e := newEnv(t, envOptions{tune: func(o *Options) { o.Postal.DefaultMaximumDeliveryAttempts = 6 }})
	ctx := context.Background()
	row := e.queueMessage("temp@dest.test")
	for attempt := 0; attempt < 6; attempt++ {
		out := e.handle(row)[0]
		if attempt < 5 {
			want := e.now.Add(time.Duration(float64(5*time.Minute) * pow13(attempt)))
			if out.Status() != store.StatusSoftFail || !out.Retries() || !out.RetryAfter().Equal(want) {
				t.Fatalf("attempt %d: %s retry=%v at %v, want SoftFail at %v", attempt, out.Status(), out.Retries(), out.RetryAfter(), want)
			}
			if _, err := e.s.ClaimQueued(ctx, []int64{row.ID}, "w1", out.RetryAfter(), out.RetryAfter().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			row.Attempts++
			continue
		}
		if out.Status() != store.StatusHardFail || out.Retries() {
			t.Fatalf("last attempt: %s retry=%v, want HardFail", out.Status(), out.Retries())
		}
		if !strings.Contains(out.Delivery().Details, "Maximum number of delivery attempts (6) has been reached.") {
			t.Errorf("details = %q", out.Delivery().Details)
		}
	}
	if ds := e.deliveries(row.MessageID); len(ds) != 6 {
		t.Errorf("%d delivery rows, want 6", len(ds))
	}
	bs := e.bounces.all()
	if len(bs) != 1 {
		t.Fatalf("%d bounces, want 1", len(bs))
	}
	rep, err := dsn.Parse(bs[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Recipients[0]; r.Status != "5.4.7" || !strings.Contains(r.DiagnosticCode, "451 4.3.0") {
		t.Errorf("bounce recipient = %+v", r)
	}
}

func pow13(n int) float64 {
	f := 1.0
	for range n {
		f *= 1.3
	}
	return f
}

func TestRetryDelayIsPostals(t *testing.T) {
	for _, c := range []struct {
		attempts int
		want     time.Duration
	}{{0, 5 * time.Minute}, {1, 6*time.Minute + 30*time.Second}, {2, 8*time.Minute + 27*time.Second}} {
		if got := RetryDelay(c.attempts).Round(time.Second); got != c.want {
			t.Errorf("RetryDelay(%d) = %v, want %v", c.attempts, got, c.want)
		}
	}
}

func TestHardFailBouncesToTheSenderButNeverBouncesABounce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.dns.Add(dnstestMX("example.com", "mx1.dest.test"))
	ctx := context.Background()
	row := e.queueMessage("perm@dest.test")
	e.handle(row)
	orig := e.message(row.MessageID)
	bs := e.bounces.all()
	if len(bs) != 1 {
		t.Fatalf("%d bounces, want 1", len(bs))
	}
	nm := bs[0].Messages[0]
	if !nm.Bounce || nm.BounceForID != orig.ID || nm.Scope != store.ScopeOutgoing || nm.RcptTo != "sender@example.com" ||
		!nm.Queue || nm.QueueDomain != "example.com" || nm.ServerID != e.fx.Server.ID || nm.DomainID != 0 {
		t.Fatalf("bounce message = %+v", nm)
	}
	rep, err := dsn.Parse(bs[0].Raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Recipients) != 1 {
		t.Fatalf("report = %+v", rep)
	}
	r := rep.Recipients[0]
	if r.Address != "perm@dest.test" || r.Action != dsn.ActionFailed || r.Status != "5.1.1" ||
		!strings.Contains(r.DiagnosticCode, "550 5.1.1 No such user here") || r.RemoteMTA != "mx1.dest.test" {
		t.Errorf("recipient = %+v", r)
	}
	if rep.PostalMessageID != orig.Token || rep.OriginalMessageID != "m0@example.com" {
		t.Errorf("report names %q / %q, want token %q and m0@example.com", rep.PostalMessageID, rep.OriginalMessageID, orig.Token)
	}
	if ds := e.deliveries(orig.ID); !strings.Contains(ds[0].Details, "Bounce sent to sender") {
		t.Errorf("details = %q", ds[0].Details)
	}

	// The bounce itself goes out with the null sender.
	bounceMsgs, err := e.s.QueuedMessages(ctx, 0, 100)
	if err != nil || len(bounceMsgs) != 1 {
		t.Fatalf("queued = %v, %v", bounceMsgs, err)
	}
	brow := e.claim([]int64{bounceMsgs[0].ID})[0]
	if out := e.handle(brow)[0]; out.Status() != store.StatusSent {
		t.Fatalf("bounce outcome %+v", out.Delivery())
	}
	got := e.mail.received()
	if len(got) != 1 || got[0].from != "" || got[0].to != "sender@example.com" {
		t.Fatalf("server saw %+v, want one message from <> to sender@example.com", got)
	}
	if top := got[0].data[:headerEnd(got[0].data)]; bytes.Contains(top, []byte("DKIM-Signature")) || bytes.Contains(top, []byte("Resent-Sender")) {
		t.Error("a bounce was signed or given a Resent-Sender")
	}

	// A bounce that hard-fails is not bounced again.
	b2 := e.queueMessage("perm2@dest.test", asBounce)
	if out := e.handle(b2)[0]; out.Status() != store.StatusHardFail {
		t.Fatalf("outcome %s", out.Status())
	}
	if n := len(e.bounces.all()); n != 1 {
		t.Errorf("%d bounces after a bounce hard-failed, want still 1", n)
	}
}

func TestHolds(t *testing.T) {
	ctx := context.Background()
	live, dev := store.ModeLive, store.ModeDevelopment
	one := int64(1)
	cases := []struct {
		name    string
		setup   func(t *testing.T, e *env)
		details string
		sent    int // messages of the pair that still reach the server
	}{
		{"suspended server", func(t *testing.T, e *env) {
			if _, err := e.s.SuspendServer(ctx, e.fx.Server.ID, "abuse"); err != nil {
				t.Fatal(err)
			}
		}, "Mail server has been suspended. No e-mails can be processed at present. Contact support for assistance.", 0},
		{"development mode", func(t *testing.T, e *env) {
			if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{Mode: &dev}); err != nil {
				t.Fatal(err)
			}
		}, "Server is in development mode.", 0},
		{"send limit", func(t *testing.T, e *env) {
			if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{Mode: &live, SendLimit: &one}); err != nil {
				t.Fatal(err)
			}
		}, "Message held because send limit (1) has been reached.", 1},
		{"suppressed recipient", func(t *testing.T, e *env) {
			if err := e.s.AddSuppressions(ctx, []store.NewSuppression{{ServerID: e.fx.Server.ID, Address: "OK1@dest.test",
				Reason: "manual", KeepUntil: e.now.Add(time.Hour)}}); err != nil {
				t.Fatal(err)
			}
		}, "Recipient (ok1@dest.test) is on the suppression list (reason: manual)", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			c.setup(t, e)
			rows := e.queueMessages([]string{"ok0@dest.test", "ok1@dest.test"})
			outs := e.handle(rows...)
			held := outs[1]
			// Mail held by the send limit keeps its queued row, released
			// when the window allows; other holds wait for a person.
			keeps := c.name == "send limit"
			if held.Status() != store.StatusHeld || !held.Held() || held.Retries() != keeps || held.Delivery().Details != c.details {
				t.Fatalf("outcome = %s held=%v retry=%v %q, want Held %q", held.Status(), held.Held(), held.Retries(), held.Delivery().Details, c.details)
			}
			m := e.message(rows[1].MessageID)
			if m.Status != store.StatusHeld || !m.Held || !m.HoldExpiry.Equal(e.now.Add(7*24*time.Hour)) {
				t.Errorf("message = %s held=%v expiry=%v", m.Status, m.Held, m.HoldExpiry)
			}
			if n := len(e.mail.received()); n != c.sent {
				t.Errorf("server received %d messages, want %d", n, c.sent)
			}
		})
	}

	t.Run("credential hold", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		cred, err := e.s.CreateCredential(ctx, e.fx.Server.ID, store.NewCredential{Type: store.CredentialSMTP, Name: "held",
			Key: store.RandomToken(12), Hold: true})
		if err != nil {
			t.Fatal(err)
		}
		row := e.queueMessage("ok@dest.test", func(m *store.NewMessage) { m.CredentialID = cred.ID })
		out := e.handle(row)[0]
		if out.Status() != store.StatusHeld || out.Delivery().Details != "Credential is configured to hold all messages authenticated by it." {
			t.Fatalf("outcome %s %q", out.Status(), out.Delivery().Details)
		}

		// postalctl message release: the manual row skips the hold and is sent.
		q, err := e.s.ReleaseHeld(ctx, row.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		out = e.handle(e.claim([]int64{q.ID})[0])[0]
		if out.Status() != store.StatusSent || len(e.mail.received()) != 1 {
			t.Fatalf("released message: %s, server got %d", out.Status(), len(e.mail.received()))
		}
	})
}

func TestSuppressedAfterHardFailAndReleasedByHand(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	first := e.queueMessage("perm@dest.test")
	e.handle(first)
	second := e.queueMessage("perm@dest.test")
	out := e.handle(second)[0]
	if out.Status() != store.StatusHeld || !strings.HasPrefix(out.Delivery().Details, "Recipient (perm@dest.test) is on the suppression list") {
		t.Fatalf("second message: %s %q", out.Status(), out.Delivery().Details)
	}
	if e.mail.connections() != 1 {
		t.Errorf("%d connections, want 1 (the second message is not sent)", e.mail.connections())
	}
	if _, err := e.s.ReleaseHeld(ctx, first.MessageID); err == nil {
		t.Error("releasing a hard-failed (not held) message succeeded")
	}
	// Released by hand, the recipient is tried again despite the suppression.
	q, err := e.s.ReleaseHeld(ctx, second.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	out = e.handle(e.claim([]int64{q.ID})[0])[0]
	if out.Status() != store.StatusHardFail || !strings.Contains(out.Delivery().Output, "550") {
		t.Fatalf("released message: %s %q", out.Status(), out.Delivery().Output)
	}
}

func TestDestinationResolution(t *testing.T) {
	cases := []struct {
		name    string
		domain  string
		zone    func(e *env)
		status  string
		details string
	}{
		{"null MX hard-fails", "nullmx.test", func(e *env) { e.dns.Add(rr("nullmx.test. 300 IN MX 0 .")) },
			store.StatusHardFail, "Domain nullmx.test does not accept mail (null MX)"},
		{"NXDOMAIN hard-fails", "nowhere.test", func(*env) {}, store.StatusHardFail, "Domain nowhere.test does not exist"},
		{"SERVFAIL soft-fails", "broken.test", func(e *env) {
			e.dns.Add(rr("broken.test. 300 IN MX 10 mx1.dest.test."))
			e.dns.ServFail("broken.test")
		}, store.StatusSoftFail, "DNS lookup of the mail servers of broken.test failed temporarily"},
		{"next MX when the first refuses connections", "fallback.test", func(e *env) {
			e.dns.Add(rr("fallback.test. 300 IN MX 5 down.fallback.test."), rr("fallback.test. 300 IN MX 10 mx1.dest.test."),
				rr("down.fallback.test. 300 IN A 127.0.0.2"))
		}, store.StatusSent, "Message for ok@fallback.test accepted by mx1.dest.test:"},
		{"A record when there is no MX", "nomx.test", func(e *env) { e.dns.Add(rr("nomx.test. 300 IN A 127.0.0.1")) },
			store.StatusSent, "Message for ok@nomx.test accepted by nomx.test:"},
		{"no MX and no address hard-fails", "bare.test", func(e *env) { e.dns.Add(rr("bare.test. 300 IN TXT \"x\"")) },
			store.StatusHardFail, "Domain bare.test has no MX, A or AAAA records"},
		{"every MX unreachable soft-fails", "down.test", func(e *env) {
			e.dns.Add(rr("down.test. 300 IN MX 5 a.down.test."), rr("a.down.test. 300 IN A 127.0.0.2"))
		}, store.StatusSoftFail, "No SMTP servers were available for down.test. Tried a.down.test."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			c.zone(e)
			row := e.queueMessage("ok@" + c.domain)
			out := e.handle(row)[0]
			if out.Status() != c.status || !strings.HasPrefix(out.Delivery().Details, c.details) {
				t.Fatalf("outcome = %s %q (output %q), want %s %q", out.Status(), out.Delivery().Details, out.Delivery().Output, c.status, c.details)
			}
			if out.Status() == store.StatusSoftFail && !out.Retries() {
				t.Error("soft failure without a retry")
			}
		})
	}
}

func TestMXAnswersAreCached(t *testing.T) {
	e := newEnv(t, envOptions{})
	for range 3 {
		e.handle(e.queueMessage("ok@dest.test"))
	}
	n := 0
	for _, q := range e.dns.Queries() {
		if q.Name == "dest.test." {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d MX queries for 3 batches, want 1", n)
	}
}

func TestRelaysReplaceMX(t *testing.T) {
	e := newEnv(t, envOptions{tune: func(o *Options) {
		o.Postal.SMTPRelays = []string{"smtp://127.0.0.1:" + itoaTest(o.SMTPClient.DestinationPort) + "?ssl_mode=None"}
		o.Resolver = nil
	}})
	row := e.queueMessage("ok@no-dns.test")
	if out := e.handle(row)[0]; out.Status() != store.StatusSent {
		t.Fatalf("outcome %s %q", out.Status(), out.Delivery().Details)
	}
	if got := e.mail.received(); len(got) != 1 || got[0].to != "ok@no-dns.test" {
		t.Fatalf("relay got %+v", got)
	}
	if len(e.dns.Queries()) != 0 {
		t.Errorf("DNS was asked %v with relays configured", e.dns.Queries())
	}
}

func TestRequireTLS(t *testing.T) {
	ctx := context.Background()
	yes := true
	t.Run("not offered soft-fails", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{RequireTLS: &yes}); err != nil {
			t.Fatal(err)
		}
		out := e.handle(e.queueMessage("ok@dest.test"))[0]
		if out.Status() != store.StatusSoftFail || !strings.Contains(out.Delivery().Output, "starttls") {
			t.Fatalf("outcome %s %q %q", out.Status(), out.Delivery().Details, out.Delivery().Output)
		}
		if len(e.mail.received()) != 0 {
			t.Error("message sent in clear")
		}
	})
	t.Run("offered is used", func(t *testing.T) {
		e := newEnv(t, envOptions{tls: true})
		if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{RequireTLS: &yes}); err != nil {
			t.Fatal(err)
		}
		row := e.queueMessage("ok@dest.test")
		out := e.handle(row)[0]
		if out.Status() != store.StatusSent || !out.Delivery().SentWithSSL {
			t.Fatalf("outcome %s ssl=%v %q", out.Status(), out.Delivery().SentWithSSL, out.Delivery().Output)
		}
		if got := e.mail.received(); len(got) != 1 || !got[0].tls {
			t.Fatalf("server got %+v", got)
		}
		if ds := e.deliveries(row.MessageID); !ds[0].SentWithSSL {
			t.Error("delivery row says no SSL")
		}
	})
}

func TestIPPoolsBindTheSourceAddress(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{tune: func(o *Options) { o.Postal.UseIPPools = true }})
	def, err := e.s.CreateIPPool(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	special, err := e.s.CreateIPPool(ctx, "special", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.NewIPAddress{{PoolID: def.ID, IPv4: "127.0.0.2", Hostname: "a.postal.test"},
		{PoolID: special.ID, IPv4: "127.0.0.3", Hostname: "b.postal.test"}} {
		if _, err := e.s.CreateIPAddress(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.s.CreateIPPoolRule(ctx, store.NewIPPoolRule{ServerID: e.fx.Server.ID, PoolID: special.ID, To: []string{"vip@dest.test"}}); err != nil {
		t.Fatal(err)
	}
	rows := e.queueMessages([]string{"ok@dest.test", "vip+tag@dest.test"})
	outs := e.handle(rows...)
	for i, want := range []string{"127.0.0.2", "127.0.0.3"} {
		if outs[i].Status() != store.StatusSent || !strings.HasSuffix(outs[i].Delivery().Details, "(from "+want+")") {
			t.Errorf("message %d: %s %q, want sent from %s", i, outs[i].Status(), outs[i].Delivery().Details, want)
		}
	}
	remotes := map[string]string{}
	for _, r := range e.mail.received() {
		host, _, _ := strings.Cut(r.remote, ":")
		remotes[r.to] = host
	}
	if remotes["ok@dest.test"] != "127.0.0.2" || remotes["vip+tag@dest.test"] != "127.0.0.3" {
		t.Errorf("server saw connections from %v", remotes)
	}
}

func TestPoolChoiceFollowsPostalsOrder(t *testing.T) {
	rt := &store.IPPoolRouting{
		ServerRules:       []*store.IPPoolRule{{PoolID: 1, From: []string{"news.example.com"}}},
		OrganizationRules: []*store.IPPoolRule{{PoolID: 2, To: []string{"gmail.test"}}},
		ServerPoolID:      3,
		DefaultPoolID:     4,
	}
	raw := []byte("From: A <a@news.example.com>\r\n\r\nbody")
	cases := []struct {
		name string
		rt   *store.IPPoolRouting
		raw  []byte
		rcpt string
		want int64
	}{
		{"server rule on From", rt, raw, "x@gmail.test", 1},
		{"organisation rule on To", rt, []byte("From: b@other.test\r\n\r\n"), "x@gmail.test", 2},
		{"server pool", rt, []byte("From: b@other.test\r\n\r\n"), "x@else.test", 3},
		{"default pool", &store.IPPoolRouting{DefaultPoolID: 4}, raw, "x@else.test", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := poolFor(c.rt, &store.Message{RcptTo: c.rcpt}, c.raw); got != c.want {
				t.Errorf("pool = %d, want %d", got, c.want)
			}
		})
	}
	list := []*store.IPAddress{{ID: 1, Priority: 10}, {ID: 2, Priority: 100}}
	if a := pickAddress(list, func() float64 { return 0.5 }); a.ID != 2 {
		t.Errorf("with equal draws the higher priority should win, got %d", a.ID)
	}
	if pickAddress(nil, func() float64 { return 0.5 }) != nil {
		t.Error("an empty pool gave an address")
	}
}

func TestBatchSharesConnections(t *testing.T) {
	e := newEnv(t, envOptions{tune: func(o *Options) { o.Concurrency = 2 }})
	var rcpts []string
	for i := range 20 {
		rcpts = append(rcpts, "ok"+itoaTest(i)+"@dest.test")
	}
	outs := e.handle(e.queueMessages(rcpts)...)
	for i, o := range outs {
		if o.Status() != store.StatusSent {
			t.Fatalf("message %d: %s", i, o.Status())
		}
	}
	if n := len(e.mail.received()); n != 20 {
		t.Errorf("server received %d, want 20", n)
	}
	if c := e.mail.connections(); c > 2 {
		t.Errorf("%d connections for 20 messages at concurrency 2", c)
	}
}

func TestWebhookEventsAreStoredAndDispatched(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	all, err := e.s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "all", URL: "https://hooks.test/all", AllEvents: true, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "held", URL: "https://hooks.test/held",
		Events: []string{webhook.EventMessageHeld}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "off", URL: "https://hooks.test/off",
		AllEvents: true, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	row := e.queueMessage("ok@dest.test")
	e.handle(row)
	ds, err := e.q.Read(ctx, queue.Webhooks, "test", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("%d webhook entries, want 1", len(ds))
	}
	reqs, err := e.s.WebhookRequests(ctx, []int64{ds[0].Job.ID})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("requests %v, %v", reqs, err)
	}
	r := reqs[0]
	if r.Event != webhook.EventMessageSent || r.WebhookID != all.ID || r.URL != all.URL || r.ServerID != e.fx.Server.ID {
		t.Errorf("request = %+v", r)
	}
	var p webhook.Delivery
	if err := json.Unmarshal([]byte(r.Payload), &p); err != nil {
		t.Fatal(err)
	}
	// The request is about the message: the console lists it there.
	if mine, err := e.s.WebhookRequestsOfMessage(ctx, row.MessageID); err != nil || len(mine) != 1 || mine[0].ID != r.ID {
		t.Errorf("requests of message %d = %+v, %v", row.MessageID, mine, err)
	}
	m := e.message(row.MessageID)
	if p.Status != store.StatusSent || p.Message.Token != m.Token || p.Message.ID != m.ID || p.Message.Direction != "outgoing" ||
		p.Message.To != "ok@dest.test" || p.Message.From != "sender@example.com" || p.Message.SpamStatus != "NotChecked" ||
		!strings.HasPrefix(p.Output, "250") || p.Time == nil || p.Timestamp != float64(e.now.Unix()) {
		t.Errorf("payload = %+v", p)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(r.Payload), &raw)
	for _, k := range []string{"message", "status", "details", "output", "sent_with_ssl", "timestamp", "time"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload has no %q", k)
		}
	}

	// A held message goes to both the all-events and the MessageHeld webhook.
	dev := store.ModeDevelopment
	if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{Mode: &dev}); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute) // past the webhook and server caches
	e.handle(e.queueMessage("ok2@dest.test"))
	ds, err = e.q.Read(ctx, queue.Webhooks, "test", 100, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("%d held entries (%v), want 2", len(ds), err)
	}
	reqs, _ = e.s.WebhookRequests(ctx, []int64{ds[0].Job.ID, ds[1].Job.ID})
	for _, r := range reqs {
		if r.Event != webhook.EventMessageHeld {
			t.Errorf("event %s, want MessageHeld", r.Event)
		}
	}
}

func TestMissingMessageAndBodyAreHandled(t *testing.T) {
	e := newEnv(t, envOptions{})
	row := e.queueMessage("ok@dest.test")
	ghost := &store.QueuedMessage{ID: row.ID + 1000, MessageID: row.MessageID + 1000, LockedBy: "w1"}
	outs := e.p.Handle(context.Background(), []*store.QueuedMessage{ghost, row})
	if outs[0].Status() != "" || outs[0].Retries() || outs[0].Delivery() != nil || outs[0].QueuedID() != ghost.ID {
		t.Errorf("missing message outcome = %+v, want a plain removal", outs[0])
	}
	if outs[1].Status() != store.StatusSent || outs[1].QueuedID() != row.ID || outs[1].Owner() != "w1" {
		t.Errorf("second outcome = %+v", outs[1])
	}
}

func dnstestMX(domain, host string) dns.RR { return rr(domain + ". 300 IN MX 10 " + host + ".") }

func itoaTest(n int) string { return strconv.Itoa(n) }

// refusingKeys is a KeyHolder that refuses every key, as a libcrypto under a
// policy that forbids the operation would.
type refusingKeys struct{}

func (refusingKeys) NewSigner(*rsa.PrivateKey) (crypto.Signer, error) {
	return nil, errors.New("refused by policy")
}

// Over a send limit, mail is held and its queued row kept until the oldest
// counted message leaves the 60-minute window; SendLimitApproaching (90 %)
// and SendLimitExceeded (100 %) fire once per crossing.
func TestSendLimitHoldsUntilTheWindowAllowsAndFiresEachCrossingOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.now = time.Now()
	live, limit := store.ModeLive, int64(2)
	if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{Mode: &live, SendLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "all", URL: "https://hooks.test/all",
		AllEvents: true, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	events := func() map[string]int {
		ds, err := e.q.Read(ctx, queue.Webhooks, "test", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(ds))
		for i, d := range ds {
			ids[i] = d.Job.ID
		}
		reqs, err := e.s.WebhookRequests(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, r := range reqs {
			out[r.Event]++
			if strings.HasPrefix(r.Event, "SendLimit") {
				var p webhook.SendLimit
				if err := json.Unmarshal([]byte(r.Payload), &p); err != nil || p.Limit != 2 || p.Server.UUID != e.fx.Server.UUID {
					t.Errorf("%s payload %s: %v", r.Event, r.Payload, err)
				}
			}
		}
		return out
	}
	first := e.queueMessage("ok0@dest.test")
	if out := e.handle(first)[0]; out.Status() != store.StatusSent {
		t.Fatalf("first: %s", out.Status())
	}
	if got := events(); got[webhook.EventSendLimitApproaching]+got[webhook.EventSendLimitExceeded] != 0 {
		t.Fatalf("events after 1 of 2: %v", got)
	}
	e.handle(e.queueMessage("ok1@dest.test"))
	if got := events(); got[webhook.EventSendLimitApproaching] != 1 || got[webhook.EventSendLimitExceeded] != 1 {
		t.Fatalf("events after 2 of 2: %v, want one of each", got)
	}
	held := e.queueMessage("ok2@dest.test")
	out := e.handle(held)[0]
	oldest := e.message(first.MessageID).Timestamp
	if out.Status() != store.StatusHeld || !out.Retries() || !out.RetryAfter().Equal(oldest.Add(time.Hour)) {
		t.Fatalf("third: %s retry=%v at %v, want Held and released at %v", out.Status(), out.Retries(), out.RetryAfter(), oldest.Add(time.Hour))
	}
	if got := events(); got[webhook.EventSendLimitApproaching]+got[webhook.EventSendLimitExceeded] != 0 || got[webhook.EventMessageHeld] != 1 {
		t.Fatalf("events after the hold: %v, want MessageHeld only (crossings fire once)", got)
	}
	rows, err := e.s.QueuedByIDs(ctx, []int64{held.ID})
	if err != nil || len(rows) != 1 || rows[0].Attempts != 0 || !rows[0].RetryAfter.Equal(oldest.Add(time.Hour)) {
		t.Fatalf("held row %+v, %v; want kept, due at the window's opening, no attempt counted", rows, err)
	}
	// An hour later the window has room: the same row is sent and the
	// message is no longer held.
	e.now = oldest.Add(time.Hour + time.Second)
	again, err := e.s.ClaimQueued(ctx, []int64{held.ID}, "w1", e.now, e.now.Add(time.Hour))
	if err != nil || len(again) != 1 {
		t.Fatalf("claim released row: %v, %v", again, err)
	}
	if out := e.handle(again[0])[0]; out.Status() != store.StatusSent {
		t.Fatalf("released: %s %+v", out.Status(), out.Delivery())
	}
	if m := e.message(held.MessageID); m.Status != store.StatusSent || m.Held {
		t.Errorf("released message = %s held=%v", m.Status, m.Held)
	}
}

// MessageDeliveryFailed quotes the delivery's details as recorded: the
// suppression and the bounce (whose id exists only once it is stored with
// the outcome) included.
func TestDeliveryFailedEventQuotesTheRecordedDetails(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	if _, err := e.s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "f", URL: "https://hooks.test/f",
		Events: []string{webhook.EventMessageDeliveryFailed}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	row := e.queueMessage("perm@dest.test")
	e.handle(row)
	ds, err := e.q.Read(ctx, queue.Webhooks, "test", 10, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("webhook entries %v, %v", ds, err)
	}
	reqs, err := e.s.WebhookRequests(ctx, []int64{ds[0].Job.ID})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("requests %v, %v", reqs, err)
	}
	var p webhook.Delivery
	if err := json.Unmarshal([]byte(reqs[0].Payload), &p); err != nil {
		t.Fatal(err)
	}
	d := e.deliveries(row.MessageID)
	if len(d) != 1 || p.Details != d[0].Details || !strings.Contains(p.Details, "Recipient added to suppression list.") ||
		!strings.Contains(p.Details, "Bounce sent to sender (see message <msg:") {
		t.Fatalf("payload details %q, delivery %+v", p.Details, d)
	}
}
