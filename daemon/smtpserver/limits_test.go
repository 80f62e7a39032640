package smtpserver_test

import (
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

// rawDialFrom connects from a given loopback source address (any of
// 127.0.0.0/8 works on Linux), to look like a different client.
func (e *env) rawDialFrom(ip string) *raw {
	e.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &raw{t: e.t, conn: conn, tp: textproto.NewConn(conn)}
}

func TestConnectionLimits(t *testing.T) {
	t.Run("max_connections refuses the connection over the total before the greeting", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) { o.Config.MaxConnections = 2 })
		a, b := e.rawDialFrom("127.0.0.1"), e.rawDialFrom("127.0.0.2")
		a.expect(220, "")
		b.expect(220, "")
		c := e.rawDialFrom("127.0.0.3")
		c.expect(421, "4.7.0 Too many connections")
		if !c.closed() {
			t.Fatal("refused connection left open")
		}
		a.send("QUIT")
		a.expect(221, "")
		waitFor(t, "a place to free up", func() bool {
			d := e.rawDialFrom("127.0.0.4")
			code, _ := d.reply()
			_ = d.conn.Close()
			return code == 220
		})
	})
	t.Run("max_connections_per_ip counts each client address on its own", func(t *testing.T) {
		e := newEnv(t, func(o *smtpserver.Options) { o.Config.MaxConnectionsPerIP = 1 })
		a := e.rawDialFrom("127.0.0.1")
		a.expect(220, "")
		again := e.rawDialFrom("127.0.0.1")
		again.expect(421, "4.7.0 Too many connections from your address")
		other := e.rawDialFrom("127.0.0.2")
		other.expect(220, "")
	})
}

func TestSessionLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*config.SMTPServer)
		script func(r *raw)
		closes bool
	}{
		{
			name:   "max_commands answers the last command, then 421 and closes",
			mutate: func(c *config.SMTPServer) { c.MaxCommands = 5 },
			script: func(r *raw) {
				r.send("EHLO client.test", "NOOP", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "RSET") // 1-5
				for range 5 {
					r.expect(250, "")
				}
				r.expect(421, "4.7.0 Too many commands")
			},
			closes: true,
		},
		{
			name:   "max_commands counts NOOP, VRFY and HELP, which never reach the session",
			mutate: func(c *config.SMTPServer) { c.MaxCommands = 4 },
			script: func(r *raw) {
				r.send("NOOP", "VRFY postmaster", "HELP", "NOOP")
				r.expect(250, "")
				r.expect(252, "")
				r.expect(502, "")
				r.expect(250, "")
				r.expect(421, "4.7.0 Too many commands")
			},
			closes: true,
		},
		{
			name:   "max_commands counts AUTH continuation lines",
			mutate: func(c *config.SMTPServer) { c.MaxCommands = 4; c.MaxBadCommands = 100 },
			script: func(r *raw) {
				r.send("EHLO client.test", "AUTH LOGIN") // 1, 2; then the user name is asked for
				r.expect(250, "")
				r.expect(334, "")
				r.send("dXNlcg==") // 3
				r.expect(334, "")
				r.send(b64("wrong-key-wrong-key")) // 4
				r.expect(535, "")
				r.expect(421, "4.7.0 Too many commands")
			},
			closes: true,
		},
		{
			name:   "max_bad_commands answers the last refusal, then 421 and closes",
			mutate: func(c *config.SMTPServer) { c.MaxBadCommands = 2 },
			script: func(r *raw) {
				r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<x@elsewhere.example>")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(530, "Authentication required")
				r.send("RCPT TO:<y@elsewhere.example>")
				r.expect(530, "Authentication required")
				r.expect(421, "4.7.0 Too many bad commands")
			},
			closes: true,
		},
		{
			name:   "max_recipients refuses recipients over the limit and keeps the rest",
			mutate: func(c *config.SMTPServer) { c.MaxRecipients = 2 },
			script: func(r *raw) {
				r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>",
					"RCPT TO:<sales+2@example.com>", "RCPT TO:<sales+3@example.com>")
				r.expect(250, "LIMITS RCPTMAX=2")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(452, "4.5.3")
			},
		},
		{
			name:   "idle_timeout ends a silent session with 421",
			mutate: func(c *config.SMTPServer) { c.IdleTimeout = 0.2 },
			script: func(r *raw) {
				r.send("EHLO client.test")
				r.expect(250, "")
				r.expect(421, "4.4.2")
			},
			closes: true,
		},
		{
			name: "data_timeout bounds one message body",
			mutate: func(c *config.SMTPServer) {
				c.DataTimeout = 0.3
				c.IdleTimeout = 60
			},
			script: func(r *raw) {
				r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(354, "")
				r.send("Subject: slow", "", "and then nothing")
				r.expect(421, "4.4.2 Timeout receiving the message")
			},
			closes: true,
		},
		{
			name: "data_timeout bounds a whole BDAT transfer, not each chunk",
			mutate: func(c *config.SMTPServer) {
				c.DataTimeout = 0.3
				c.IdleTimeout = 60
			},
			script: func(r *raw) {
				r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "BDAT 6")
				_, _ = io.WriteString(r.conn, "Subjec")
				for range 4 {
					r.expect(250, "")
				}
				// Waiting for the next chunk is still receiving the message.
				r.expect(421, "4.4.2 Timeout receiving the message")
			},
			closes: true,
		},
		{
			name: "data_timeout cuts a BDAT chunk short and closes",
			mutate: func(c *config.SMTPServer) {
				c.DataTimeout = 0.3
				c.IdleTimeout = 60
			},
			script: func(r *raw) {
				r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "BDAT 100")
				_, _ = io.WriteString(r.conn, "Subject: half a chunk\r\n")
				for range 3 {
					r.expect(250, "")
				}
				// go-smtp answers the cut chunk itself; the rest of the
				// chunk is not read as commands.
				if c, _ := r.reply(); c/100 != 5 && c != 421 {
					t.Errorf("reply to the cut chunk %d, want a refusal", c)
				}
				waitForReply(r, 421, "4.4.2 Timeout receiving the message")
			},
			closes: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *smtpserver.Options) { tc.mutate(&o.Config) })
			e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
			r := e.rawDial()
			r.expect(220, "")
			tc.script(r)
			if tc.closes && !r.closed() {
				t.Fatal("the session is still open")
			}
			e.assertNothingStored()
		})
	}
}

func TestShutdownLetsTheMessageInFlightFinish(t *testing.T) {
	e := newEnv(t)
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	idle := e.rawDial()
	idle.expect(220, "")
	idle.send("EHLO client.test")
	idle.expect(250, "")

	busy := e.rawDial()
	busy.expect(220, "")
	busy.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(354, "")
	busy.send("Subject: during shutdown", "", "first half")

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()

	idle.expect(421, "")
	if !idle.closed() {
		t.Fatal("idle session still open during shutdown")
	}
	refused, err := net.Dial("tcp", e.addr)
	if err == nil {
		_ = refused.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, _ := refused.Read(buf)
		_ = refused.Close()
		if strings.HasPrefix(string(buf[:n]), "220") {
			t.Fatal("a new connection was greeted during shutdown")
		}
	}
	busy.send("second half", ".")
	busy.expect(250, "")
	busy.expect(421, "")
	if !busy.closed() {
		t.Fatal("session still open after its message during shutdown")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ms := e.storedMessages(); len(ms) != 1 || ms[0].Subject != "during shutdown" {
		t.Fatalf("stored %d messages, want the one finished during shutdown", len(ms))
	}
}

// waitForReply reads replies until one has code, failing if the connection
// ends first; the text must be in that reply.
func waitForReply(r *raw, code int, text string) {
	r.t.Helper()
	for {
		c, msg := r.reply()
		if c == code {
			if !strings.Contains(msg, text) {
				r.t.Fatalf("reply %d %q, want it to contain %q", c, msg, text)
			}
			return
		}
	}
}
