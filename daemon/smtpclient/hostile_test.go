package smtpclient

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// scriptedReplies are what startScriptedServer answers; an empty field takes
// a plain success reply.
type scriptedReplies struct {
	greeting, rcpt, data string
}

// startScriptedServer is an SMTP server over TCP that answers with the given
// replies, whatever bytes they hold, and accepts everything else.
func startScriptedServer(t *testing.T, r scriptedReplies) Destination {
	t.Helper()
	if r.greeting == "" {
		r.greeting = "220 scripted.test"
	}
	if r.rcpt == "" {
		r.rcpt = "250 2.1.5 ok"
	}
	if r.data == "" {
		r.data = "250 2.0.0 ok"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() { serveScripted(c, r) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return Destination{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, SSLMode: SSLNone}
}

func serveScripted(c net.Conn, r scriptedReplies) {
	defer c.Close()
	br := bufio.NewReader(c)
	say := func(s string) bool { _, err := io.WriteString(c, s+"\r\n"); return err == nil }
	if !say(r.greeting) {
		return
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		reply := "250 ok"
		switch strings.ToUpper(strings.Fields(line + " x")[0]) {
		case "RCPT":
			reply = r.rcpt
		case "QUIT":
			say("221 bye")
			return
		case "DATA":
			if !say("354 go ahead") {
				return
			}
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			reply = r.data
		}
		if !say(reply) {
			return
		}
	}
}

// TestHostileReplyTextIsMadeSafe: whatever bytes a server answers with, the
// text in Result, Error and RcptError is valid UTF-8 without NUL, read as
// ISO-8859-1 where it is not UTF-8, and at most MaxReplyText bytes.
func TestHostileReplyTextIsMadeSafe(t *testing.T) {
	long := strings.Repeat("é", 1500) // 3000 bytes: more than MaxReplyText, one line within the read buffer
	tests := []struct {
		name    string
		replies scriptedReplies
		want    string // Message of the Result or Error
		wantLen int    // instead of want: the length of a cut message
	}{
		{name: "Latin-1 success", replies: scriptedReplies{data: "250 2.0.0 Nachricht f\xfcr Empf\xe4nger"}, want: "Nachricht für Empfänger"},
		{name: "NUL in success", replies: scriptedReplies{data: "250 2.0.0 queued\x00as 1"}, want: "queued\uFFFDas 1"},
		{name: "long success", replies: scriptedReplies{data: "250 2.0.0 " + long}, wantLen: MaxReplyText},
		{name: "multi-line Latin-1 refusal of the data",
			replies: scriptedReplies{data: "550-5.7.1 Zur\xfcckgewiesen\r\n550 5.7.1 Spam\x1b[31m"}, want: "Zurückgewiesen\nSpam\uFFFD[31m"},
		{name: "Latin-1 greeting", replies: scriptedReplies{greeting: "554 5.7.1 Zugriff f\xfcr Sie verweigert"}, want: "Zugriff für Sie verweigert"},
		{name: "NUL in recipient refusal", replies: scriptedReplies{rcpt: "550 5.1.1 no\x00such user \xff"}, want: "no\uFFFDsuch user ÿ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startScriptedServer(t, tt.replies)
			c := newClient(t, nil)
			res, err := c.Send(context.Background(), d, testEnv, []byte("x\r\n"))
			msg := res.Message
			if err != nil {
				e := asError(t, err)
				msg = e.Message
				if e.Stage == StageRcpt {
					if len(e.Rejected) != 1 || e.Rejected[0].Message != msg {
						t.Errorf("Rejected = %+v, want one with the message %q", e.Rejected, msg)
					}
				}
			}
			if !utf8.ValidString(msg) || strings.ContainsRune(msg, 0) {
				t.Fatalf("message %q is not valid NUL-free UTF-8", msg)
			}
			if tt.wantLen != 0 {
				if len(msg) != tt.wantLen || !strings.HasPrefix(long, msg) {
					t.Errorf("message of %d bytes, want the first %d bytes of the reply", len(msg), tt.wantLen)
				}
				return
			}
			if msg != tt.want {
				t.Errorf("message = %q, want %q", msg, tt.want)
			}
		})
	}
}
