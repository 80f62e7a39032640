package smtpserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

func (e *env) route(domainID int64, name, mode string) *store.Route {
	e.t.Helper()
	r, err := e.st.CreateRoute(context.Background(), e.fx.Server.ID, store.NewRoute{DomainID: domainID, Name: name, Mode: mode})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) credential(typ, key string) *store.Credential {
	e.t.Helper()
	c, err := e.st.CreateCredential(context.Background(), e.fx.Server.ID, store.NewCredential{Type: typ, Name: typ, Key: key})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// sendOutgoing sends one authenticated message and returns its stored row.
func (e *env) sendOutgoing() *store.Message {
	e.t.Helper()
	c := e.dialAuth()
	if err := send(c, "alice@example.com", []string{"bob@example.org"}, message("alice@example.com", "original")); err != nil {
		e.t.Fatalf("sending the original message: %v", err)
	}
	ms := e.storedMessages()
	return ms[len(ms)-1]
}

func TestRecipientClasses(t *testing.T) {
	type want struct {
		scope, rcptTo, queueDomain string
		bounce                     bool
		route, credential, domain  bool // the row names one
	}
	for _, tc := range []struct {
		name string
		// setup prepares data and returns the recipient to send to.
		setup func(e *env) string
		auth  bool
		// header is the message's header block (From etc.).
		header string
		// rcptCode/dataCode are the expected refusal codes (0: accepted).
		rcptCode, dataCode int
		text               string
		want               want
		check              func(t *testing.T, e *env, m *store.Message)
	}{
		{
			name:   "authenticated sender to an outside address is outgoing mail of the credential's server",
			setup:  func(*env) string { return "bob@Example.ORG" },
			auth:   true,
			header: "From: Alice <alice@example.com>",
			want:   want{scope: store.ScopeOutgoing, rcptTo: "bob@Example.ORG", queueDomain: "example.org", credential: true, domain: true},
		},
		{
			name:     "authenticated sender whose From is not on a verified domain is refused at the end of DATA",
			setup:    func(*env) string { return "bob@example.org" },
			auth:     true,
			header:   "From: alice@elsewhere.org",
			dataCode: 530, text: "From/Sender name is not valid",
		},
		{
			name:     "authenticated sender without a From header is refused",
			setup:    func(*env) string { return "bob@example.org" },
			auth:     true,
			header:   "Subject: no from",
			dataCode: 530, text: "From/Sender name is not valid",
		},
		{
			name:     "a Sender header does not count unless the server allows it",
			setup:    func(*env) string { return "bob@example.org" },
			auth:     true,
			header:   "From: alice@elsewhere.org\r\nSender: alice@example.com",
			dataCode: 530, text: "From/Sender name is not valid",
		},
		{
			name: "with allow_sender a verified Sender header is enough",
			setup: func(e *env) string {
				yes := true
				if _, err := e.st.UpdateServer(context.Background(), e.fx.Server.ID, store.ServerSettings{AllowSender: &yes}); err != nil {
					e.t.Fatal(err)
				}
				return "bob@example.org"
			},
			auth:   true,
			header: "From: alice@elsewhere.org\r\nSender: alice@example.com",
			want:   want{scope: store.ScopeOutgoing, rcptTo: "bob@example.org", queueDomain: "example.org", credential: true, domain: true},
		},
		{
			name: "a client address inside an SMTP-IP credential's range relays as that credential",
			setup: func(e *env) string {
				e.credential(store.CredentialSMTPIP, "127.0.0.0/8")
				return "carol@example.net"
			},
			header: "From: alice@example.com",
			want:   want{scope: store.ScopeOutgoing, rcptTo: "carol@example.net", queueDomain: "example.net", credential: true, domain: true},
		},
		{
			name: "an SMTP-IP credential for another range does not let the client relay",
			setup: func(e *env) string {
				e.credential(store.CredentialSMTPIP, "10.0.0.0/8")
				return "carol@example.net"
			},
			header:   "From: alice@example.com",
			rcptCode: 530, text: "Authentication required",
		},
		{
			name:     "an unauthenticated client from an unknown address may not relay",
			setup:    func(*env) string { return "victim@example.net" },
			header:   "From: spammer@example.com",
			rcptCode: 530, text: "Authentication required",
		},
		{
			name: "an address with a route is incoming mail for the route",
			setup: func(e *env) string {
				e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
				return "Sales@example.com"
			},
			header: "From: customer@example.org",
			want:   want{scope: store.ScopeIncoming, rcptTo: "Sales@example.com", queueDomain: "example.com", route: true, domain: true},
		},
		{
			name: "a +tag on a route address still finds the route",
			setup: func(e *env) string {
				e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
				return "sales+orders@example.com"
			},
			header: "From: customer@example.org",
			want:   want{scope: store.ScopeIncoming, rcptTo: "sales+orders@example.com", queueDomain: "example.com", route: true, domain: true},
		},
		{
			name: "the wildcard route takes any local part",
			setup: func(e *env) string {
				e.route(e.fx.Domain.ID, "*", store.RouteModeHold)
				return "anyone@example.com"
			},
			header: "From: customer@example.org",
			want:   want{scope: store.ScopeIncoming, rcptTo: "anyone@example.com", queueDomain: "example.com", route: true, domain: true},
		},
		{
			name: "a route in Reject mode refuses the recipient",
			setup: func(e *env) string {
				e.route(e.fx.Domain.ID, "closed", store.RouteModeReject)
				return "closed@example.com"
			},
			header:   "From: customer@example.org",
			rcptCode: 550, text: "Route does not accept incoming messages",
		},
		{
			name: "a route token at the route domain is rewritten to the route's address",
			setup: func(e *env) string {
				r := e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
				return r.Token + "+t1@" + routeDomain
			},
			header: "From: customer@example.org",
			want:   want{scope: store.ScopeIncoming, rcptTo: "sales+t1@example.com", queueDomain: "example.com", route: true, domain: true},
		},
		{
			name:     "an unknown route token is refused",
			setup:    func(*env) string { return "deadbeef@" + routeDomain },
			header:   "From: customer@example.org",
			rcptCode: 550, text: "Invalid route token",
		},
		{
			name:   "a server's return-path address is a bounce for that server",
			setup:  func(e *env) string { return e.fx.Server.Token + "@" + returnPathDomain },
			header: "From: MAILER-DAEMON@example.org",
			want:   want{scope: store.ScopeIncoming, queueDomain: returnPathDomain, bounce: true},
			check: func(t *testing.T, e *env, m *store.Message) {
				if m.BounceForID != 0 {
					t.Errorf("BounceForID = %d, want 0 (no message named)", m.BounceForID)
				}
			},
		},
		{
			name: "a bounce to a server with a __returnpath__ route is stored under that route",
			setup: func(e *env) string {
				if _, err := e.st.CreateReturnPathRoute(context.Background(), e.fx.Server.ID, "https://app.example.net/rp"); err != nil {
					e.t.Fatal(err)
				}
				return e.fx.Server.Token + "@" + returnPathDomain
			},
			header: "From: MAILER-DAEMON@example.org",
			want:   want{scope: store.ScopeIncoming, queueDomain: returnPathDomain, bounce: true, route: true},
			check: func(t *testing.T, e *env, m *store.Message) {
				rt, err := e.st.ReturnPathRoute(context.Background(), e.fx.Server.ID)
				if err != nil || m.RouteID != rt.ID {
					t.Errorf("RouteID = %d, want the return-path route (%v)", m.RouteID, err)
				}
			},
		},
		{
			name: "a +<message token> on the return path links the bounce to its message",
			setup: func(e *env) string {
				orig := e.sendOutgoing()
				return e.fx.Server.Token + "+" + orig.Token + "@" + returnPathDomain
			},
			header: "From: MAILER-DAEMON@example.org",
			want:   want{scope: store.ScopeIncoming, queueDomain: returnPathDomain, bounce: true},
			check: func(t *testing.T, e *env, m *store.Message) {
				if orig := e.storedMessages()[0]; m.BounceForID != orig.ID {
					t.Errorf("BounceForID = %d, want %d", m.BounceForID, orig.ID)
				}
			},
		},
		{
			name: "a message token as the return-path local part links the bounce too",
			setup: func(e *env) string {
				return e.sendOutgoing().Token + "@psrp.example.com"
			},
			header: "From: MAILER-DAEMON@example.org",
			want:   want{scope: store.ScopeIncoming, queueDomain: "psrp.example.com", bounce: true},
			check: func(t *testing.T, e *env, m *store.Message) {
				if orig := e.storedMessages()[0]; m.BounceForID != orig.ID || m.ServerID != e.fx.Server.ID {
					t.Errorf("BounceForID = %d on server %d, want %d on %d", m.BounceForID, m.ServerID, orig.ID, e.fx.Server.ID)
				}
			},
		},
		{
			name:   "the custom return-path prefix is a return-path domain",
			setup:  func(e *env) string { return e.fx.Server.Token + "@psrp.customer.example" },
			header: "From: MAILER-DAEMON@example.org",
			want:   want{scope: store.ScopeIncoming, queueDomain: "psrp.customer.example", bounce: true},
		},
		{
			name:     "an unknown token at the return-path domain is refused",
			setup:    func(*env) string { return "zzzzzz@" + returnPathDomain },
			header:   "From: MAILER-DAEMON@example.org",
			rcptCode: 550, text: "Invalid server token",
		},
		{
			name: "a suspended server's credential may not send",
			setup: func(e *env) string {
				if _, err := e.st.SuspendServer(context.Background(), e.fx.Server.ID, "abuse"); err != nil {
					e.t.Fatal(err)
				}
				return "bob@example.org"
			},
			auth:     true,
			header:   "From: alice@example.com",
			rcptCode: 535, text: "Mail server has been suspended",
		},
		{
			name: "a suspended server's routes receive nothing",
			setup: func(e *env) string {
				e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
				if _, err := e.st.SuspendServer(context.Background(), e.fx.Server.ID, "abuse"); err != nil {
					e.t.Fatal(err)
				}
				return "sales@example.com"
			},
			header:   "From: customer@example.org",
			rcptCode: 535, text: "Mail server has been suspended",
		},
		{
			name:     "an address without a domain is refused (except the postmaster: input_limits_test.go)",
			setup:    func(*env) string { return "someone" },
			header:   "From: customer@example.org",
			rcptCode: 501, text: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rcpt := tc.setup(e)
			before := len(e.rec.all())
			c := e.dial()
			if tc.auth {
				if err := c.Auth(sasl.NewPlainClient("", "user", e.fx.SMTPKey)); err != nil {
					t.Fatalf("AUTH: %v", err)
				}
			}
			if err := c.Mail("sender@example.org", nil); err != nil {
				t.Fatalf("MAIL: %v", err)
			}
			err := c.Rcpt(rcpt, nil)
			if tc.rcptCode != 0 {
				assertRefusal(t, "RCPT", err, tc.rcptCode, tc.text)
				if len(e.rec.all()) != before {
					t.Fatal("a refused recipient led to a submission")
				}
				return
			}
			if err != nil {
				t.Fatalf("RCPT %s: %v", rcpt, err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(w, tc.header+"\r\nSubject: test\r\n\r\nbody\r\n")
			err = w.Close()
			if tc.dataCode != 0 {
				assertRefusal(t, "end of DATA", err, tc.dataCode, tc.text)
				if len(e.rec.all()) != before {
					t.Fatal("a refused message was submitted")
				}
				return
			}
			if err != nil {
				t.Fatalf("end of DATA: %v", err)
			}
			ms := e.storedMessages()
			if len(ms) != before+1 {
				t.Fatalf("%d messages stored, want %d", len(ms), before+1)
			}
			m := ms[len(ms)-1]
			w2 := tc.want
			if w2.rcptTo == "" {
				w2.rcptTo = rcpt
			}
			if m.Scope != w2.scope || m.RcptTo != w2.rcptTo || m.Bounce != w2.bounce || m.MailFrom != "sender@example.org" ||
				m.ServerID != e.fx.Server.ID || m.Status != store.StatusPending {
				t.Fatalf("stored %+v, want scope %s rcpt %s bounce %v on server %d", m, w2.scope, w2.rcptTo, w2.bounce, e.fx.Server.ID)
			}
			if (m.RouteID != 0) != w2.route || (m.CredentialID != 0) != w2.credential || (m.DomainID != 0) != w2.domain {
				t.Fatalf("stored route %d credential %d domain %d; want route %v credential %v domain %v",
					m.RouteID, m.CredentialID, m.DomainID, w2.route, w2.credential, w2.domain)
			}
			if w2.domain && m.DomainID != e.fx.Domain.ID {
				t.Fatalf("DomainID = %d, want %d", m.DomainID, e.fx.Domain.ID)
			}
			q := e.queuedFor(m.ID)
			if q.Scope != w2.scope || q.Domain != w2.queueDomain {
				t.Fatalf("queued row %+v, want scope %s domain %s", q, w2.scope, w2.queueDomain)
			}
			if tc.check != nil {
				tc.check(t, e, m)
			}
		})
	}
}

func assertRefusal(t *testing.T, step string, err error, wantCode int, text string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != wantCode || !strings.Contains(se.Message, text) {
		t.Fatalf("%s: got %v, want %d %q", step, err, wantCode, text)
	}
}

// queuedFor returns the queued row of a message.
func (e *env) queuedFor(messageID int64) *store.QueuedMessage {
	e.t.Helper()
	qs, err := e.st.QueuedMessages(context.Background(), 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, q := range qs {
		if q.MessageID == messageID {
			return q
		}
	}
	e.t.Fatalf("message %d has no queued row", messageID)
	return nil
}

func TestAcceptedMessageIsStoredWithPostalHeaders(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name          string
		privacy       bool
		body          string
		wantReceived  string
		keepMessageID string
	}{
		{
			name: "a message without Message-ID gets one, the Received names the client",
			body: "From: alice@example.com\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nHello\r\n",
			wantReceived: "Received: from client.test (" + clientRDNS + " [127.0.0.1])\r\n\tby " + hostname +
				" with ESMTPA;\r\n\tTue, 04 Mar 2025 05:06:07 +0000\r\n",
		},
		{
			name:          "a message's own Message-ID is kept",
			body:          "From: alice@example.com\r\nMessage-ID: <own@example.com>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nHello\r\n",
			keepMessageID: "own@example.com",
			wantReceived: "Received: from client.test (" + clientRDNS + " [127.0.0.1])\r\n\tby " + hostname +
				" with ESMTPA;\r\n\tTue, 04 Mar 2025 05:06:07 +0000\r\n",
		},
		{
			name:         "a privacy-mode server's Received leaves the client out",
			privacy:      true,
			body:         "From: alice@example.com\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nHello\r\n",
			wantReceived: "Received: by " + hostname + " with ESMTPA;\r\n\tTue, 04 Mar 2025 05:06:07 +0000\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *smtpserver.Options) { o.Now = func() time.Time { return now } })
			if tc.privacy {
				yes := true
				if _, err := e.st.UpdateServer(context.Background(), e.fx.Server.ID, store.ServerSettings{PrivacyMode: &yes}); err != nil {
					t.Fatal(err)
				}
			}
			c := e.dialAuth()
			if err := send(c, "alice@example.com", []string{"bob@example.org", "carol@example.net"}, tc.body); err != nil {
				t.Fatal(err)
			}
			ms := e.storedMessages()
			if len(ms) != 2 {
				t.Fatalf("%d messages stored, want one per recipient (2)", len(ms))
			}
			if ms[0].RawMessageID == 0 || ms[0].RawMessageID != ms[1].RawMessageID {
				t.Fatalf("raw message ids %d and %d, want one shared body", ms[0].RawMessageID, ms[1].RawMessageID)
			}
			if ms[0].Subject != "café" || ms[0].ReceivedWithSSL {
				t.Fatalf("subject %q (want decoded café), received_with_ssl %v", ms[0].Subject, ms[0].ReceivedWithSSL)
			}
			raw, err := e.st.RawMessage(context.Background(), ms[0].RawMessageID)
			if err != nil {
				t.Fatal(err)
			}
			s := string(raw)
			if !strings.HasPrefix(s, tc.wantReceived) {
				t.Fatalf("stored message starts\n%q\nwant\n%q", s[:min(len(s), 200)], tc.wantReceived)
			}
			if !strings.Contains(s, "\r\nX-Postal-MsgID: "+ms[0].Token+"\r\n\r\nHello\r\n") {
				t.Fatalf("X-Postal-MsgID of the first message (%s) missing at the end of the header:\n%s", ms[0].Token, s)
			}
			if tc.keepMessageID != "" {
				if ms[0].MessageID != tc.keepMessageID || strings.Count(s, "Message-ID:") != 1 {
					t.Fatalf("message_id %q and %d Message-ID fields; want %q kept alone", ms[0].MessageID, strings.Count(s, "Message-ID:"), tc.keepMessageID)
				}
			} else {
				if !strings.HasSuffix(ms[0].MessageID, "@"+hostname) || !strings.Contains(s, "Message-ID: <"+ms[0].MessageID+">\r\n") {
					t.Fatalf("message_id %q; want a generated <uuid@%s> in the message:\n%s", ms[0].MessageID, hostname, s)
				}
			}
			if ms[1].MessageID != ms[0].MessageID || ms[1].Token == ms[0].Token {
				t.Fatalf("the two recipients' rows: %q/%q tokens %s/%s", ms[0].MessageID, ms[1].MessageID, ms[0].Token, ms[1].Token)
			}
		})
	}
}

func TestPipelinedTransactionIsAcceptedInOneRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	e.route(e.fx.Domain.ID, "support", store.RouteModeAccept)
	r := e.rawDial()
	r.expect(220, hostname)
	r.send("EHLO client.test")
	ehlo := r.expect(250, "PIPELINING")
	for _, ext := range []string{"8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "SIZE 14680064"} {
		if !strings.Contains(ehlo, ext) {
			t.Errorf("EHLO lacks %s:\n%s", ext, ehlo)
		}
	}
	// Without TLS configured, AUTH is offered in the clear, as in Postal.
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO without TLS should offer AUTH PLAIN LOGIN and no STARTTLS:\n%s", ehlo)
	}
	r.send("MAIL FROM:<customer@example.org>", "RCPT TO:<sales@example.com>", "RCPT TO:<nobody@nowhere.example>",
		"RCPT TO:<support@example.com>", "DATA")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(530, "5.7.0 Authentication required")
	r.expect(250, "")
	r.expect(354, "")
	r.send("Subject: pipelined", "", "..leading dot", ".")
	r.expect(250, "2.0.0")
	r.send("QUIT")
	r.expect(221, "")

	ms := e.storedMessages()
	if len(ms) != 2 || ms[0].RcptTo != "sales@example.com" || ms[1].RcptTo != "support@example.com" {
		t.Fatalf("stored %d messages, want sales and support", len(ms))
	}
	raw, err := e.st.RawMessage(context.Background(), ms[0].RawMessageID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(raw), "\r\n\r\n.leading dot\r\n") {
		t.Fatalf("dot-stuffing not undone or body changed: %q", raw)
	}
}

func TestBrokenClientsGetErrorsAndStoreNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(r *raw)
	}{
		{"commands out of order", func(r *raw) {
			r.send("MAIL FROM:<a@example.org>")
			r.expect(502, "introduce yourself")
			r.send("EHLO client.test")
			r.expect(250, "")
			r.send("RCPT TO:<sales@example.com>")
			r.expect(502, "MAIL FROM")
			r.send("DATA")
			r.expect(502, "RCPT TO")
			r.send("QUIT")
			r.expect(221, "")
		}},
		{"garbage bytes and unknown verbs end the session", func(r *raw) {
			r.send("\x00\x01\xff\xfe binary junk")
			r.expect(500, "command unrecognized")
			r.send("HELO")
			r.expect(501, "")
			r.send("XYZZY")
			r.expect(501, "Bad command")
			r.send("FOO bar")
			r.expect(501, "Bad command")
			r.send("BAR")
			r.expect(501, "Bad command")
			r.expect(500, "Too many errors")
			if !r.closed() {
				r.t.Fatal("connection still open after repeated garbage")
			}
		}},
		{"malformed MAIL and RCPT arguments", func(r *raw) {
			r.send("EHLO client.test")
			r.expect(250, "")
			r.send("MAIL FROM:<unterminated@example.org")
			r.expect(501, "")
			r.send("MAIL FROM:<a@example.org> FOO=BAR")
			r.expect(500, "Unknown MAIL FROM argument")
			r.send("MAIL FROM:<a@example.org>")
			r.expect(250, "")
			r.send("RCPT TO:")
			r.expect(501, "")
			r.send("DATA extra")
			r.expect(501, "")
			r.send("QUIT")
			r.expect(221, "")
		}},
		{"a data line over the line limit ends the session", func(r *raw) {
			r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(354, "")
			r.send("Subject: long", "", strings.Repeat("x", smtpserver.MaxLineLength+10), ".")
			r.expect(500, "Line too long")
			r.expect(500, "closing connection")
			if !r.closed() {
				r.t.Fatal("connection still open after an over-long line")
			}
		}},
		{"BDAT chunks over the size limit are refused", func(r *raw) {
			r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(250, "")
			r.send("BDAT 20000000 LAST")
			r.expect(552, "5.3.4")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
			r := e.rawDial()
			r.expect(220, "")
			tc.script(r)
			e.assertNothingStored()
		})
	}
}

func TestBDATIsAccepted(t *testing.T) {
	e := newEnv(t)
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	r := e.rawDial()
	r.expect(220, "")
	r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(250, "")
	part1, part2 := "Subject: chunked\r\n\r\n", "in two chunks\r\n"
	_, _ = io.WriteString(r.conn, "BDAT "+strconv.Itoa(len(part1))+"\r\n"+part1)
	r.expect(250, "")
	_, _ = io.WriteString(r.conn, "BDAT "+strconv.Itoa(len(part2))+" LAST\r\n"+part2)
	r.expect(250, "queued")
	ms := e.storedMessages()
	if len(ms) != 1 {
		t.Fatalf("%d messages stored, want 1", len(ms))
	}
	raw, _ := e.st.RawMessage(context.Background(), ms[0].RawMessageID)
	if !strings.HasSuffix(string(raw), "\r\n\r\nin two chunks\r\n") || ms[0].Subject != "chunked" {
		t.Fatalf("stored %q with subject %q", raw, ms[0].Subject)
	}
}

func TestOversizedMessageIsRefusedAndTheSessionGoesOn(t *testing.T) {
	e := newEnv(t, func(o *smtpserver.Options) { o.Config.MaxMessageSize = 1 })
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	c := e.dial()
	if err := c.Mail("a@example.org", &smtp.MailOptions{Size: 200 << 20}); code(err) != 552 {
		t.Fatalf("MAIL with SIZE=200MB: %v, want 552", err)
	}
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("sales@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("y", 998) + "\r\n"
	chunk := strings.Repeat(line, 1024) // ~1 MB
	_, _ = io.WriteString(w, "Subject: huge\r\n\r\n")
	for range 100 {
		if _, err := io.WriteString(w, chunk); err != nil {
			t.Fatalf("writing 100 MB: %v", err)
		}
	}
	assertRefusal(t, "end of a 100 MB DATA", w.Close(), 552, "Message too large (maximum size 1MB)")
	e.assertNothingStored()
	if err := send(c, "a@example.org", []string{"sales@example.com"}, "Subject: small\r\n\r\nok\r\n"); err != nil {
		t.Fatalf("a small message after the refusal: %v", err)
	}
	if n := len(e.storedMessages()); n != 1 {
		t.Fatalf("%d messages stored, want the small one", n)
	}
}

func TestClientVanishingMidDataStoresNothing(t *testing.T) {
	e := newEnv(t, func(o *smtpserver.Options) { o.Config.LogConnections = true })
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	r := e.rawDial()
	r.expect(220, "")
	r.send("EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(354, "")
	r.send("Subject: cut short", "", "half a messa")
	_ = r.conn.Close()
	waitFor(t, "the server to log the connection's end", func() bool { return strings.Contains(e.logs.String(), "connection closed") })
	e.assertNothingStored()
	if e.rec.calls != 0 {
		t.Fatalf("Submit called %d times for an incomplete message", e.rec.calls)
	}
}

func TestStorageDownAnswers451AndStoresNothing(t *testing.T) {
	down := errors.New("redis: connection refused")
	for _, tc := range []struct {
		name string
		// when: "mail" (down before MAIL), "data" (down at the end of DATA),
		// "submit" (the commit fails).
		when string
	}{
		{"database or Redis known down refuses MAIL", "mail"},
		{"going down during DATA refuses the message", "data"},
		{"a failed commit is a temporary failure, never 250", "submit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
			r := e.rawDial()
			r.expect(220, "")
			r.send("EHLO client.test")
			r.expect(250, "")
			switch tc.when {
			case "mail":
				e.ready.Store(&down)
				r.send("MAIL FROM:<a@example.org>")
				r.expect(451, "4.3.0")
			case "data", "submit":
				r.send("MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
				r.expect(250, "")
				r.expect(250, "")
				r.expect(354, "")
				r.send("Subject: x", "", "body")
				if tc.when == "data" {
					e.ready.Store(&down)
				} else {
					e.rec.fail.Store(&down)
				}
				r.send(".")
				r.expect(451, "4.3.0")
			}
			e.assertNothingStored()
			// Recovery: the same session succeeds once storage is back.
			e.ready.Store(nil)
			e.rec.fail.Store(nil)
			r.send("RSET", "MAIL FROM:<a@example.org>", "RCPT TO:<sales@example.com>", "DATA")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(354, "")
			r.send("Subject: y", "", "body", ".")
			r.expect(250, "")
			if n := len(e.storedMessages()); n != 1 {
				t.Fatalf("%d messages after recovery, want 1", n)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(e *env, r *raw)
		authed bool
	}{
		{"PLAIN with an initial response and any user name", func(e *env, r *raw) {
			r.send("AUTH PLAIN " + b64("\x00whatever\x00"+e.fx.SMTPKey))
			r.expect(235, "")
		}, true},
		{"PLAIN with the response on its own line", func(e *env, r *raw) {
			r.send("AUTH PLAIN")
			r.expect(334, "")
			r.send(b64("authz\x00user\x00" + e.fx.SMTPKey))
			r.expect(235, "")
		}, true},
		{"LOGIN with Postal's prompts", func(e *env, r *raw) {
			r.send("AUTH LOGIN")
			if msg := r.expect(334, ""); msg != "VXNlcm5hbWU6" {
				t.Errorf("first LOGIN prompt %q, want Username:", msg)
			}
			r.send(b64("someone"))
			if msg := r.expect(334, ""); msg != "UGFzc3dvcmQ6" {
				t.Errorf("second LOGIN prompt %q, want Password:", msg)
			}
			r.send(b64(e.fx.SMTPKey))
			r.expect(235, "")
		}, true},
		{"LOGIN with the user name as initial response", func(e *env, r *raw) {
			r.send("AUTH LOGIN " + b64("someone"))
			r.expect(334, "UGFzc3dvcmQ6")
			r.send(b64(e.fx.SMTPKey))
			r.expect(235, "")
		}, true},
		{"a wrong key is refused", func(e *env, r *raw) {
			r.send("AUTH PLAIN " + b64("\x00user\x00not-the-key-at-all"))
			r.expect(535, "5.7.8 Invalid credential")
		}, false},
		{"an API key is not an SMTP credential", func(e *env, r *raw) {
			e.credential(store.CredentialAPI, "api-key-0123456789abcdef")
			r.send("AUTH PLAIN " + b64("\x00user\x00api-key-0123456789abcdef"))
			r.expect(535, "Invalid credential")
		}, false},
		{"a PLAIN response without separators is a protocol error", func(e *env, r *raw) {
			r.send("AUTH PLAIN " + b64("justonefield"))
			r.expect(535, "protocol error")
		}, false},
		{"bad base64 is refused", func(e *env, r *raw) {
			r.send("AUTH PLAIN !!!notbase64")
			r.expect(454, "")
		}, false},
		{"an unknown mechanism is refused", func(e *env, r *raw) {
			r.send("AUTH CRAM-MD5")
			r.expect(504, "")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.rawDial()
			r.expect(220, "")
			r.send("EHLO client.test")
			r.expect(250, "")
			tc.script(e, r)
			// An authenticated session may relay; one that is not may not.
			r.send("MAIL FROM:<a@example.com>", "RCPT TO:<bob@example.org>")
			r.expect(250, "")
			if tc.authed {
				r.expect(250, "")
			} else {
				r.expect(530, "Authentication required")
			}
		})
	}
}

func TestAuthFailuresAreRateLimitedPerAddress(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomicTime
	clock.set(now)
	e := newEnv(t, func(o *smtpserver.Options) {
		o.Config.AuthMaxFailures = 3
		o.Config.AuthFailureWindow = 60
		o.Config.MaxBadCommands = 100
		o.Now = clock.get
	})
	r := failAuth(e, 3)
	r.send("AUTH PLAIN " + b64("\x00u\x00"+e.fx.SMTPKey))
	r.expect(454, "Too many failed authentication attempts")
	// Another connection from the same address is limited too.
	r2 := e.rawDial()
	r2.expect(220, "")
	r2.send("EHLO client.test", "AUTH PLAIN "+b64("\x00u\x00"+e.fx.SMTPKey))
	r2.expect(250, "")
	r2.expect(454, "Too many failed")
	// Once the window has passed the right key works again.
	clock.set(now.Add(61 * time.Second))
	r2.send("AUTH PLAIN " + b64("\x00u\x00"+e.fx.SMTPKey))
	r2.expect(235, "")
}

// With a shared window (Redis), failures at one smtp-server process block
// AUTH at another; a process without it still counts only its own.
func TestAuthFailuresAreCountedAcrossProcesses(t *testing.T) {
	rc, keys := redistest.New(t)
	limit := func(shared bool) func(o *smtpserver.Options) {
		return func(o *smtpserver.Options) {
			o.Config.AuthMaxFailures = 3
			o.Config.AuthFailureWindow = 60
			o.Config.MaxBadCommands = 100
			if shared {
				w, err := ratelimit.New(ratelimit.Options{Client: rc, Keys: keys, Name: "smtp-auth-failures", Max: 3, Window: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				o.AuthFailures = w
			}
		}
	}
	a, b, alone := newEnv(t, limit(true)), newEnv(t, limit(true)), newEnv(t, limit(false))
	failAuth(a, 3)
	rb := b.rawDial()
	rb.expect(220, "")
	rb.send("EHLO client.test", "AUTH PLAIN "+b64("\x00u\x00"+b.fx.SMTPKey))
	rb.expect(250, "")
	rb.expect(454, "Too many failed")
	ra := alone.rawDial()
	ra.expect(220, "")
	ra.send("EHLO client.test", "AUTH PLAIN "+b64("\x00u\x00"+alone.fx.SMTPKey))
	ra.expect(250, "")
	ra.expect(235, "")
}

// The client's PTR name is looked up once per address while cached (a
// missing record is remembered too); a failed lookup is not remembered.
func TestReverseDNSIsCachedPerAddress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		answer    func() ([]string, error)
		wantName  string
		wantCalls int
	}{
		{"a name", func() ([]string, error) { return []string{"mail.client.test."}, nil }, "mail.client.test", 1},
		{"no PTR record", func() ([]string, error) {
			return nil, &net.DNSError{Err: "no such host", Name: "1.0.0.127.in-addr.arpa", IsNotFound: true}
		}, "127.0.0.1", 1},
		{"a failing resolver", func() ([]string, error) {
			return nil, &net.DNSError{Err: "server misbehaving", Name: "1.0.0.127.in-addr.arpa", IsTemporary: true}
		}, "127.0.0.1", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			e := newEnv(t, func(o *smtpserver.Options) {
				o.LookupAddr = func(context.Context, string) ([]string, error) {
					calls.Add(1)
					return tc.answer()
				}
			})
			for i := range 3 {
				c := e.dialAuth()
				if err := send(c, "alice@example.com", []string{"bob@example.org"}, "From: alice@example.com\r\nSubject: x\r\n\r\nx\r\n"); err != nil {
					t.Fatal(err)
				}
				_ = c.Quit()
				ms := e.storedMessages()
				raw, err := e.st.RawMessage(context.Background(), ms[i].RawMessageID)
				if err != nil {
					t.Fatal(err)
				}
				if want := "(" + tc.wantName + " [127.0.0.1])"; !strings.Contains(string(raw), want) {
					t.Fatalf("message %d: Received lacks %q:\n%s", i, want, raw)
				}
			}
			if got := calls.Load(); int(got) != tc.wantCalls {
				t.Fatalf("LookupAddr called %d times for 3 connections, want %d", got, tc.wantCalls)
			}
		})
	}
}

// failAuth opens a session to e and fails AUTH n times in it; the session
// stays open.
func failAuth(e *env, n int) *raw {
	r := e.rawDial()
	r.expect(220, "")
	r.send("EHLO client.test")
	r.expect(250, "")
	for range n {
		r.send("AUTH PLAIN " + b64("\x00u\x00wrong-key-wrong-key"))
		r.expect(535, "Invalid credential")
	}
	return r
}
