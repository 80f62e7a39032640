package outbound

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/postalgo/postal/daemon/store"
)

func TestStripHeader(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"absent", "A: 1\r\n\r\nX-Postal-MsgID: body\r\n", "A: 1\r\n\r\nX-Postal-MsgID: body\r\n"},
		{"folded and repeated", "x-postal-msgid: a\r\n b\r\nA: 1\r\nX-Postal-MsgID:c\r\n\r\nbody", "A: 1\r\n\r\nbody"},
		{"bare LF", "X-Postal-MsgID: a\nB: 2\n\nX-Postal-MsgID: keep\n", "B: 2\n\nX-Postal-MsgID: keep\n"},
		{"no body", "X-Postal-MsgID: a\r\nB: 2\r\n", "B: 2\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(stripHeader([]byte(c.in), msgIDHeader)); got != c.want {
				t.Errorf("stripHeader = %q, want %q", got, c.want)
			}
		})
	}
}

func TestHeaderValuesUnfolds(t *testing.T) {
	got := headerValues([]byte("From: A\r\n <a@x.test>\r\nfrom: b@y.test\r\n\r\nFrom: body@z.test\r\n"), "from")
	if len(got) != 2 || got[0] != "A <a@x.test>" || got[1] != "b@y.test" {
		t.Errorf("headerValues = %q", got)
	}
	if from := fromAddresses([]byte("From: A <a@x.test>, b@y.test\r\n\r\n")); strings.Join(from, ",") != "a@x.test,b@y.test" {
		t.Errorf("fromAddresses = %q", from)
	}
}

// FuzzStripHeader checks that removing a header field never touches the
// body, leaves no such field in the header block, and changes nothing when
// there is none.
func FuzzStripHeader(f *testing.F) {
	for _, s := range []string{"A: 1\r\n\r\nbody", "X-Postal-MsgID: a\r\n b\r\n\r\nx", "x-postal-msgid:\n\n", "\r\n", "nocolon\r\n\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out := stripHeader(msg, msgIDHeader)
		if !bytes.HasSuffix(out, msg[headerEnd(msg):]) {
			t.Fatalf("body changed: %q -> %q", msg, out)
		}
		if len(headerValues(out, msgIDHeader)) != 0 {
			t.Fatalf("field left in %q", out)
		}
		if len(headerValues(msg, msgIDHeader)) == 0 && !bytes.Equal(out, msg) {
			t.Fatalf("changed without a field: %q -> %q", msg, out)
		}
	})
}

// TestOversizedHeaderIsNeverSigned: a stored message whose header block is
// over the SMTP server's limits (plus the fields it adds) hard-fails
// without a signature being computed or anything sent, and bounces nothing.
func TestOversizedHeaderIsNeverSigned(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string
	}{
		{"too many lines", "Subject: bomb\r\n" + strings.Repeat(" x\r\n", 200)},
		{"too many bytes", "Subject: " + strings.Repeat("x", 20_000) + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{tune: func(o *Options) { o.MaxHeaderBytes, o.MaxHeaderLines = 2048, 100 }})
			raw := []byte("From: Sender <sender@example.com>\r\nTo: big@dest.test\r\n" + tc.header + "\r\nbody\r\n")
			acc, err := e.s.InsertSubmissions(context.Background(), []store.Submission{{Raw: raw, Messages: []store.NewMessage{{
				ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "big@dest.test", MailFrom: "sender@example.com",
				DomainID: e.fx.Domain.ID, CredentialID: e.fx.Credential.ID, Queue: true, QueueDomain: "dest.test"}}}})
			if err != nil {
				t.Fatal(err)
			}
			row := e.claim([]int64{acc[0][0].QueuedID})[0]
			out := e.handle(row)[0]
			if out.Status() != store.StatusHardFail || out.Retries() || !strings.Contains(out.Delivery().Details, "header is over the size limit") {
				t.Fatalf("outcome %s retry=%v %+v, want a final HardFail naming the header", out.Status(), out.Retries(), out.Delivery())
			}
			if got := e.mail.received(); len(got) != 0 {
				t.Fatalf("the server received %d messages", len(got))
			}
			if n := len(e.bounces.all()); n != 0 {
				t.Fatalf("%d bounces for our own refusal", n)
			}
		})
	}
	// Within the limits plus the room for the fields the SMTP server adds,
	// the same limits send and sign.
	e := newEnv(t, envOptions{tune: func(o *Options) { o.MaxHeaderBytes, o.MaxHeaderLines = 2048, 100 }})
	row := e.queueMessage("ok@dest.test")
	if out := e.handle(row)[0]; out.Status() != store.StatusSent {
		t.Fatalf("a normal message: %s %+v", out.Status(), out.Delivery())
	}
}
