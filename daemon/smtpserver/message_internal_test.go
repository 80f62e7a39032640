package smtpserver

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/store"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msg     string
		fields  []headerField
		endText string // what follows the header block
	}{
		{
			name:    "fields, a folded value and the blank line",
			msg:     "From: a@example.com\r\nSubject: one\r\n two\r\n\r\nbody\r\n",
			fields:  []headerField{{"From", "a@example.com"}, {"Subject", "one two"}},
			endText: "\r\nbody\r\n",
		},
		{
			name:    "bare line feeds",
			msg:     "To: b@example.com\nX-A:  spaced  \n\nbody",
			fields:  []headerField{{"To", "b@example.com"}, {"X-A", "spaced"}},
			endText: "\nbody",
		},
		{
			name:    "a message that is all header, without a final newline",
			msg:     "Subject: only",
			fields:  []headerField{{"Subject", "only"}},
			endText: "",
		},
		{
			name:    "a line that is not a field ends the header",
			msg:     "Subject: x\r\nthis is body text\r\nFrom: not-a-header@example.com\r\n",
			fields:  []headerField{{"Subject", "x"}},
			endText: "this is body text\r\nFrom: not-a-header@example.com\r\n",
		},
		{
			name:    "a continuation before any field is body",
			msg:     " leading space\r\nFrom: x@example.com\r\n",
			endText: " leading space\r\nFrom: x@example.com\r\n",
		},
		{
			name:    "empty message",
			msg:     "",
			endText: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := parseHeader([]byte(tc.msg))
			if len(h.fields) != len(tc.fields) {
				t.Fatalf("fields %q, want %q", h.fields, tc.fields)
			}
			for i := range h.fields {
				if h.fields[i] != tc.fields[i] {
					t.Fatalf("field %d = %q, want %q", i, h.fields[i], tc.fields[i])
				}
			}
			if got := tc.msg[h.end:]; got != tc.endText {
				t.Fatalf("after the header: %q, want %q", got, tc.endText)
			}
		})
	}
}

func TestHeaderValues(t *testing.T) {
	h := parseHeader([]byte("Message-ID:  <id-1@example.com> (comment)\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\n" +
		"Received: from a by MX.Postal.test; x\r\nReceived: from b by other; y\r\nreceived: by mx.postal.test\r\n\r\n"))
	if got := h.messageID(); got != "id-1@example.com" {
		t.Errorf("messageID = %q", got)
	}
	if got := h.subject(); got != "café" {
		t.Errorf("subject = %q, want the decoded café", got)
	}
	if got := h.receivedBy("mx.postal.test"); got != 2 {
		t.Errorf("receivedBy = %d, want 2 (case-insensitive)", got)
	}
	bad := parseHeader([]byte("Subject: \xff\xfe\x00broken\r\n\r\n"))
	if s := bad.subject(); !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		t.Errorf("subject %q is not safe to store", s)
	}
}

func TestAuthenticatedDomain(t *testing.T) {
	verified := time.Unix(1, 0)
	example := &store.Domain{ID: 1, Name: "example.com", VerifiedAt: verified}
	unverified := &store.Domain{ID: 2, Name: "pending.com"}
	anyDomain := &store.Domain{ID: 3, Name: "zz-any.com", VerifiedAt: verified, UseForAny: true}
	for _, tc := range []struct {
		name        string
		domains     []*store.Domain
		allowSender bool
		header      string
		want        int64 // 0: refused
	}{
		{"a From on a verified domain", []*store.Domain{example}, false, "From: Alice <alice@EXAMPLE.com>", 1},
		{"a From on an unverified domain", []*store.Domain{example, unverified}, false, "From: a@pending.com", 0},
		{"every From address must pass", []*store.Domain{example}, false, "From: a@example.com, b@other.com", 0},
		{"several From addresses that all pass", []*store.Domain{example}, false, "From: a@example.com, b@example.com", 1},
		{"no From at all", []*store.Domain{example}, false, "Subject: x", 0},
		{"an unparsable From falls back to Postal's reading", []*store.Domain{example}, false, "From: broken <<a@example.com>", 1},
		{"a use_for_any domain lets any From pass", []*store.Domain{example, anyDomain}, false, "From: a@anywhere.org", 3},
		{"Sender is ignored without allow_sender", []*store.Domain{example}, false, "From: a@other.org\r\nSender: s@example.com", 0},
		{"Sender passes with allow_sender", []*store.Domain{example}, true, "From: a@other.org\r\nSender: s@example.com", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := authenticatedDomain(tc.domains, tc.allowSender, parseHeader([]byte(tc.header+"\r\n\r\n")))
			switch {
			case tc.want == 0 && d != nil:
				t.Fatalf("domain %s accepted, want refusal", d.Name)
			case tc.want != 0 && (d == nil || d.ID != tc.want):
				t.Fatalf("domain %v, want id %d", d, tc.want)
			}
		})
	}
}

func TestAssemble(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"fields go at the end of the header", "A: 1\r\n\r\nbody\r\n", "R: x\r\nA: 1\r\nX: y\r\n\r\nbody\r\n"},
		{"a header without final newline gets one", "A: 1", "R: x\r\nA: 1\r\nX: y\r\n"},
		{"a message without header", "\r\nbody", "R: x\r\nX: y\r\n\r\nbody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assemble([]byte(tc.msg), parseHeader([]byte(tc.msg)), "R: x\r\n", []string{"X: y"})
			if string(got) != tc.want {
				t.Fatalf("assemble = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"plain", 10, "plain"},
		{"nul\x00byte", 20, "nulbyte"},
		{"bad\xffutf8", 20, "bad\uFFFDutf8"},
		{"ééé", 3, "é"}, // never cut inside a rune
	} {
		if got := cleanText(tc.in, tc.limit); got != tc.want {
			t.Errorf("cleanText(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when invalid
	}{
		{"192.0.2.7", "192.0.2.7/32"},
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"192.0.2.9/24", "192.0.2.0/24"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"not an address", ""},
	} {
		p, ok := parseRange(tc.in)
		if got := map[bool]string{true: p.String(), false: ""}[ok]; got != tc.want {
			t.Errorf("parseRange(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFailureWindowSlides(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newFailureWindow(2, time.Minute, func() time.Time { return now })
	ip, other := clientKey(netip.MustParseAddr("192.0.2.1")), clientKey(netip.MustParseAddr("192.0.2.2"))
	if _, ok := w.acquire(ip); !ok {
		t.Fatal("first attempt refused")
	}
	if w.blocked(ip) {
		t.Fatal("blocked after one failure of two allowed")
	}
	now = now.Add(30 * time.Second)
	second, ok := w.acquire(ip)
	if !ok || !w.blocked(ip) || w.blocked(other) {
		t.Fatal("want the failing address blocked and the other not")
	}
	if _, ok := w.acquire(ip); ok {
		t.Fatal("a third attempt was let through with two counted")
	}
	w.release(ip, second) // the second attempt succeeded after all
	if w.blocked(ip) {
		t.Fatal("still blocked after an attempt was taken back")
	}
	if _, ok := w.acquire(ip); !ok {
		t.Fatal("attempt refused after one was taken back")
	}
	now = now.Add(31 * time.Second) // the first failure leaves the window
	if w.blocked(ip) {
		t.Fatal("still blocked after the first failure left the window")
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
	} {
		if got := clientKey(netip.MustParseAddr(tc.in)).String(); got != tc.want {
			t.Errorf("clientKey(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if k := clientKey(netip.Addr{}); k.IsValid() {
		t.Errorf("clientKey of no address = %v, want the zero Prefix", k)
	}
}

func TestParseNetworksNamesTheBadEntry(t *testing.T) {
	nets, err := parseNetworks("smtp_server.proxy_protocol_trusted", []string{"10.0.0.0/8", "::ffff:192.0.2.1", "2001:db8::/64"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"10.9.9.9": true, "192.0.2.1": true, "::ffff:10.1.1.1": true, "2001:db8::5": true, "11.0.0.1": false, "2001:db8:0:1::1": false} {
		if got := inNetworks(nets, netip.MustParseAddr(ip)); got != want {
			t.Errorf("inNetworks(%s) = %v, want %v", ip, got, want)
		}
	}
	_, err = parseNetworks("smtp_server.proxy_protocol_trusted", []string{"10.0.0.0/8", "proxy.example"})
	if want := `smtp_server.proxy_protocol_trusted[1]: "proxy.example" is not an IP address or CIDR range`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestSASLServers(t *testing.T) {
	var got []string
	auth := func(p string) error { got = append(got, p); return nil }
	protoErr := func() error { return errAuthProtocol.err }
	plain := &plainServer{authenticate: auth, protocolError: protoErr}
	if ch, done, err := plain.Next(nil); len(ch) != 0 || done || err != nil {
		t.Fatalf("PLAIN without initial response: %q %v %v", ch, done, err)
	}
	if _, done, err := plain.Next([]byte("authz\x00user\x00secret")); !done || err != nil {
		t.Fatalf("PLAIN response: %v %v", done, err)
	}
	if _, _, err := (&plainServer{authenticate: auth, protocolError: protoErr}).Next([]byte("nofields")); err == nil {
		t.Fatal("PLAIN without separators accepted")
	}
	login := &loginServer{authenticate: auth, protocolError: protoErr}
	steps := [][]byte{nil, []byte("user"), []byte("secret2")}
	prompts := []string{"Username:", "Password:", ""}
	for i, s := range steps {
		ch, done, err := login.Next(s)
		if err != nil || string(ch) != prompts[i] || done != (i == 2) {
			t.Fatalf("LOGIN step %d: %q %v %v", i, ch, done, err)
		}
	}
	if len(got) != 2 || got[0] != "secret" || got[1] != "secret2" {
		t.Fatalf("passwords checked %q, want secret and secret2", got)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, seed := range []string{
		"From: a@example.com\r\nSubject: x\r\n\r\nbody",
		"Subject: =?UTF-8?B?w6k=?=\r\n folded\r\n\r\n",
		"Message-ID: <x@y>\nFrom: \"A, B\" <a@b.c>, d@e.f\n\nbody",
		"\r\n",
		"no colon here\r\n",
		"From: <<<@@>>>\r\nSender: \xff\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := parseHeader(msg)
		if h.end < 0 || h.end > len(msg) {
			t.Fatalf("end %d outside the message (%d bytes)", h.end, len(msg))
		}
		for _, fl := range h.fields {
			if fl.name == "" || strings.ContainsAny(fl.name, ":\r\n") {
				t.Fatalf("bad field name %q", fl.name)
			}
		}
		// Parsing only the header block gives the same fields.
		again := parseHeader(msg[:h.end])
		if len(again.fields) != len(h.fields) {
			t.Fatalf("reparsing the header block found %d fields, want %d", len(again.fields), len(h.fields))
		}
		// Assembling keeps every original byte, in order, after the new
		// fields, and the new fields parse as fields of the header.
		out := assemble(msg, h, "Received: by x; now\r\n", []string{"X-Postal-MsgID: tok"})
		if !bytes.HasPrefix(out, []byte("Received: by x; now\r\n")) || !bytes.HasSuffix(out, msg[h.end:]) ||
			!bytes.Contains(out, msg[:h.end]) {
			t.Fatalf("assemble lost bytes: %q -> %q", msg, out)
		}
		if got := parseHeader(out).values("X-Postal-MsgID"); len(h.fields) > 0 && (len(got) == 0 || got[len(got)-1] != "tok") {
			t.Fatalf("added field not read back from %q: %q", out, got)
		}
		for _, s := range []string{h.subject(), h.messageID()} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("unsafe stored text %q", s)
			}
		}
		_ = authenticatedDomain([]*store.Domain{{ID: 1, Name: "example.com", VerifiedAt: time.Unix(1, 0)}}, true, h)
	})
}
