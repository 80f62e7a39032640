package outbound

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/inspect"
	"github.com/postalgo/postal/daemon/inspect/inspecttest"
	"github.com/postalgo/postal/daemon/store"
)

// queueRaw stores and queues one outgoing message with raw as its body and
// returns its row claimed by "w1".
func (e *env) queueRaw(rcpt string, raw []byte) *store.QueuedMessage {
	e.t.Helper()
	_, dom, _ := strings.Cut(rcpt, "@")
	acc, err := e.s.InsertSubmissions(context.Background(), []store.Submission{{Raw: raw, Messages: []store.NewMessage{{
		ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: rcpt, MailFrom: "sender@example.com", Subject: "inspected",
		DomainID: e.fx.Domain.ID, CredentialID: e.fx.Credential.ID, Queue: true, QueueDomain: dom}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.claim([]int64{acc[0][0].QueuedID})[0]
}

func TestOutgoingSpamIsHeldOverTheServersThreshold(t *testing.T) {
	ctx := context.Background()
	addr := inspecttest.SpamdAddr(t)
	e := newEnv(t, envOptions{tune: func(o *Options) {
		o.Inspector = inspect.New(&inspect.Spamd{Addr: addr, Timeout: 20 * time.Second}, nil, 1<<20)
	}})
	spam := inspecttest.Message("Cheap pills.\r\n" + inspecttest.GTUBE)
	ham := inspecttest.Message("Hello Bob,\r\n\r\nthe minutes are attached.\r\n\r\nAlice")

	// Without a threshold outgoing mail is not inspected.
	out := e.handle(e.queueRaw("ok0@dest.test", spam))[0]
	if out.Status() != store.StatusSent || out.Effects().Inspection != nil {
		t.Fatalf("no threshold: %s, inspection %+v; want Sent uninspected", out.Status(), out.Effects().Inspection)
	}

	ten := 10.0
	if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{OutboundSpamThreshold: &ten}); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute) // past the server cache
	row := e.queueRaw("ok1@dest.test", spam)
	out = e.handle(row)[0]
	if out.Status() != store.StatusHeld || !strings.HasPrefix(out.Delivery().Details, "Message is likely spam. Threshold is 10.0 and the message scored 1") {
		t.Fatalf("GTUBE: %s %q; want Held as likely spam", out.Status(), out.Delivery().Details)
	}
	ins, err := e.s.Inspections(ctx, []int64{row.MessageID})
	if err != nil || !ins[row.MessageID].Inspected || !ins[row.MessageID].Spam || ins[row.MessageID].SpamScore < 100 {
		t.Fatalf("recorded inspection %+v, %v", ins[row.MessageID], err)
	}
	checks, err := e.s.SpamChecks(ctx, row.MessageID)
	if err != nil || len(checks) == 0 || checks[0].Code != "GTUBE" {
		t.Fatalf("spam checks %+v, %v", checks, err)
	}
	for _, c := range checks {
		if c.Code == "NO_RELAYS" || c.Code == "NO_RECEIVED" {
			t.Errorf("outgoing checks keep %s", c.Code)
		}
	}
	if n := len(e.mail.received()); n != 1 {
		t.Fatalf("server received %d messages, want only the uninspected one", n)
	}

	// postalctl message release: the operator's release is sent.
	q, err := e.s.ReleaseHeld(ctx, row.MessageID)
	if err != nil {
		t.Fatal(err)
	}
	if out := e.handle(e.claim([]int64{q.ID})[0])[0]; out.Status() != store.StatusSent {
		t.Fatalf("released: %s", out.Status())
	}

	if out := e.handle(e.queueRaw("ok2@dest.test", ham))[0]; out.Status() != store.StatusSent || out.Effects().Inspection == nil {
		t.Fatalf("ham: %s, inspection %+v; want Sent and inspected", out.Status(), out.Effects().Inspection)
	}
}

func TestOutgoingScannerDownRetries(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	e := newEnv(t, envOptions{tune: func(o *Options) {
		o.Inspector = inspect.New(nil, &inspect.ClamAV{Addr: closed}, 0)
	}})
	ten := 10.0
	if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{OutboundSpamThreshold: &ten}); err != nil {
		t.Fatal(err)
	}
	out := e.handle(e.queueRaw("ok@dest.test", inspecttest.Message("Hello.")))[0]
	if !out.Retries() || out.Status() != "" || !strings.Contains(out.Details(), "clamav unavailable") {
		t.Fatalf("outcome %s retry=%v %q; want a retry naming clamav", out.Status(), out.Retries(), out.Details())
	}
	if n := len(e.mail.received()); n != 0 {
		t.Fatalf("server received %d unscanned messages", n)
	}
}
