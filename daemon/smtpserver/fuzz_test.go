package smtpserver_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

const fuzzKey = "fuzz-credential-key-0001"

// FuzzSession feeds arbitrary bytes to the server as one client's whole
// stream over TCP. Whatever the bytes, the server must not panic (go-smtp
// would answer "421 Internal server error"), a message must be stored
// exactly when the client was told "250 ... OK: queued", and the session
// must end promptly once the client has sent everything.
func FuzzSession(f *testing.F) {
	e := newEnv(f, func(o *smtpserver.Options) {
		o.Config.MaxConnectionsPerIP = 1000
		o.Config.MaxConnections = 1000
	})
	e.credential(store.CredentialSMTP, fuzzKey)
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)

	seeds := []string{
		"EHLO c\r\nAUTH PLAIN " + b64("\x00u\x00"+fuzzKey) + "\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n" +
			"DATA\r\nFrom: a@example.com\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<sales@example.com>\r\nRCPT TO:<" + e.fx.Server.Token + "@" + returnPathDomain + ">\r\n" +
			"DATA\r\nSubject: in\r\n\r\n..dot\r\n.\r\nRSET\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<x@y.z>\r\nRCPT TO:<sales@example.com>\r\nBDAT 5\r\nhelloBDAT 3 LAST\r\nabc",
		"EHLO c\r\nAUTH LOGIN\r\n" + b64("u") + "\r\n" + b64(fuzzKey) + "\r\nMAIL FROM:<a@example.com> SIZE=10\r\n",
		"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<victim@elsewhere.example>\r\nDATA\r\n",
		"\x00\xff\r\n\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nSTARTTLS\r\nAUTH PLAIN =\r\n*\r\n",
		"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<sales@example.com>\r\nDATA\r\nSubject: cut",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		before := len(e.rec.all())
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			_, _ = conn.Write(input)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		start := time.Now()
		out, err := io.ReadAll(conn)
		<-wrote
		// Once the client has said all it will, the server finishes at
		// once: no input may park a session until a timeout.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the server took %v to finish with %q", d, input)
		}
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("reading the server's replies: %v", err)
		}
		replies := string(out)
		if strings.Contains(replies, "Internal server error") {
			t.Fatalf("the server panicked on %q:\n%s", input, replies)
		}
		stored := e.rec.all()[before:]
		if queued := strings.Count(replies, " OK: queued"); queued != len(stored) {
			t.Fatalf("%d messages stored but %d acknowledged with 250 for %q:\n%s", len(stored), queued, input, replies)
		}
		for _, sub := range stored {
			for _, a := range sub {
				ms, err := e.st.Messages(context.Background(), []int64{a.MessageID})
				if err != nil || len(ms) != 1 || ms[0].RcptTo == "" || ms[0].ServerID != e.fx.Server.ID {
					t.Fatalf("stored message %d: %v %v", a.MessageID, ms, err)
				}
			}
		}
	})
}
