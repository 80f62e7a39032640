package smtpserver

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// writesConn records each Write that reaches the socket.
type writesConn struct {
	net.Conn
	writes []string
}

func (w *writesConn) Write(b []byte) (int, error) {
	w.writes = append(w.writes, string(b))
	return len(b), nil
}

// TestReplyLinesGoOutTogether: the continuation lines of a multi-line
// reply are held until its last line and the reply leaves in one write;
// anything that is not a whole continuation line (a final line, a TLS
// record, a partial line) goes out at once, after what was held, so the
// bytes on the wire are exactly those written, in order.
func TestReplyLinesGoOutTogether(t *testing.T) {
	tlsRecord := string([]byte{0x17, 0x03, 0x03, 0x00, 0x05, '2', '5', '0', '-', 'x', '\r', '\n'})
	long := "250-" + strings.Repeat("x", maxHeldReply) + "\r\n"
	cases := []struct {
		name   string
		in     []string
		writes []string
	}{
		{"single line", []string{"220 ready\r\n"}, []string{"220 ready\r\n"}},
		{"ehlo reply", []string{"250-host\r\n", "250-PIPELINING\r\n", "250 SIZE 100\r\n"},
			[]string{"250-host\r\n250-PIPELINING\r\n250 SIZE 100\r\n"}},
		{"empty continuation text", []string{"250-\r\n", "250 ok\r\n"}, []string{"250-\r\n250 ok\r\n"}},
		{"tls record", []string{tlsRecord}, []string{tlsRecord}},
		{"held then tls record", []string{"250-a\r\n", tlsRecord}, []string{"250-a\r\n" + tlsRecord}},
		{"partial line", []string{"250-a\r\n", "250-b"}, []string{"250-a\r\n250-b"}},
		{"two lines in one write", []string{"250-a\r\n250-b\r\n"}, []string{"250-a\r\n250-b\r\n"}},
		{"not a reply code", []string{"2x0-a\r\n"}, []string{"2x0-a\r\n"}},
		{"no line end", []string{"250-abc"}, []string{"250-abc"}},
		{"over the hold limit", []string{"250-a\r\n", long, "250 b\r\n"}, []string{"250-a\r\n" + long, "250 b\r\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &writesConn{}
			c := &trackedConn{Conn: w}
			var all bytes.Buffer
			for _, p := range tc.in {
				n, err := c.Write([]byte(p))
				if err != nil || n != len(p) {
					t.Fatalf("Write(%q) = %d, %v", p, n, err)
				}
				all.WriteString(p)
			}
			if strings.Join(w.writes, "") != all.String() {
				t.Fatalf("wire %q, want %q", strings.Join(w.writes, ""), all.String())
			}
			if len(w.writes) != len(tc.writes) {
				t.Fatalf("writes %q, want %q", w.writes, tc.writes)
			}
			for i := range tc.writes {
				if w.writes[i] != tc.writes[i] {
					t.Fatalf("writes %q, want %q", w.writes, tc.writes)
				}
			}
		})
	}
}
