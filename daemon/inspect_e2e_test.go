package daemon_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/inspect/inspecttest"
)

// rawReceiver is an HTTP endpoint that records the raw messages it gets
// (RawMessage format, form encoding), by path.
type rawReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]string
}

func newRawReceiver(t *testing.T) *rawReceiver {
	r := &rawReceiver{got: map[string][]string{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		form, err := url.ParseQuery(string(b))
		raw, err2 := base64.StdEncoding.DecodeString(strings.ReplaceAll(form.Get("message"), "\n", ""))
		if err != nil || err2 != nil {
			t.Errorf("endpoint %s: payload %q: %v %v", req.URL.Path, b, err, err2)
		}
		r.mu.Lock()
		r.got[req.URL.Path] = append(r.got[req.URL.Path], string(raw))
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *rawReceiver) requests(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[path]...)
}

// peerSendBody delivers one message with body as an MX peer would.
func peerSendBody(port int, from, to, subject, body string) error {
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.far.test"); err != nil {
		return err
	}
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(to, "@", ".") + "." + fmt.Sprint(time.Now().UnixNano()) + "@far.test>\r\n\r\n" + body + "\r\n"
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

type listedMessage struct {
	ID      int64  `json:"id"`
	RcptTo  string `json:"rcpt_to"`
	Subject string `json:"subject"`
	Status  string `json:"status"`
	Scope   string `json:"scope"`
	Details string `json:"details"`
}

// incomingBySubject lists the install's incoming messages by subject.
func incomingBySubject(t *testing.T, in install) map[string]listedMessage {
	var list []listedMessage
	postalctlJSON(t, in, &list, "message", "ls", "acme/mail")
	out := map[string]listedMessage{}
	for _, m := range list {
		if m.Scope == "incoming" {
			out[m.Subject] = m
		}
	}
	return out
}

func hostPort(t *testing.T, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// TestInspectedMailFollowsSpamModes runs postald --role all with rspamd
// and ClamAV: GTUBE is marked (delivered with X-Postal-Spam: yes),
// quarantined (Held) or failed per the route's spam mode; EICAR is held
// and its endpoint gets nothing; a clean message arrives with
// X-Postal-Spam: no and X-Postal-Threat: no.
func TestInspectedMailFollowsSpamModes(t *testing.T) {
	ru, err := url.Parse(inspecttest.RspamdURL(t))
	if err != nil {
		t.Fatal(err)
	}
	ch, cp := hostPort(t, inspecttest.ClamdAddr(t))
	rcv := newRawReceiver(t)
	in := newInstall(t, true)
	in.extra = []string{"RSPAMD_ENABLED=true", "RSPAMD_HOST=" + ru.Hostname(), "RSPAMD_PORT=" + ru.Port(),
		"CLAMAV_ENABLED=true", "CLAMAV_HOST=" + ch, "CLAMAV_PORT=" + cp, "POSTAL_SMTP_HOSTNAME=postal.test"}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	for _, r := range []struct{ name, mode string }{{"mark", "mark"}, {"quarantine", "quarantine"}, {"fail", "fail"}, {"clean", "mark"}} {
		postalctlJSON(t, in, nil, "route", "add", "acme/mail", r.name+"@example.com", "--endpoint", "http:"+rcv.URL+"/"+r.name,
			"--format", "raw", "--encoding", "form", "--spam-mode", r.mode)
	}
	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })

	sends := []struct{ to, subject, body string }{
		{"mark@example.com", "gtube mark", "Cheap pills.\r\n" + inspecttest.GTUBE},
		{"quarantine@example.com", "gtube quarantine", "Cheap pills.\r\n" + inspecttest.GTUBE},
		{"fail@example.com", "gtube fail", "Cheap pills.\r\n" + inspecttest.GTUBE},
		{"clean@example.com", "eicar", "See the attachment.\r\n" + inspecttest.EICAR},
		{"clean@example.com", "clean", "Hello Bob,\r\n\r\nthe minutes of Tuesday's meeting are attached.\r\n\r\nAlice"},
	}
	for _, s := range sends {
		if err := peerSendBody(in.smtpPort, "sender@far.test", s.to, s.subject, s.body); err != nil {
			t.Fatalf("send %s: %v\n%s", s.subject, err, p.stderr)
		}
	}
	want := map[string]string{"gtube mark": "Sent", "gtube quarantine": "Held", "gtube fail": "HardFail",
		"eicar": "Held", "clean": "Sent"}
	var got map[string]listedMessage
	waitFor(t, "final statuses", 90*time.Second, func() bool {
		got = incomingBySubject(t, in)
		for s, st := range want {
			if got[s].Status != st {
				return false
			}
		}
		return true
	})
	if d := got["gtube quarantine"].Details; d != "Message placed into quarantine." {
		t.Errorf("quarantine details %q", d)
	}
	if d := got["eicar"].Details; !strings.Contains(d, "Eicar-Test-Signature") {
		t.Errorf("eicar details %q: want the signature named", d)
	}

	marked := rcv.requests("/mark")
	if len(marked) != 1 || !strings.HasPrefix(marked[0], "X-Postal-Spam: yes\r\nX-Postal-Spam-Threshold: 5.0\r\nX-Postal-Spam-Score: ") ||
		!strings.Contains(marked[0], "X-Postal-Threat: no\r\n") {
		t.Errorf("marked spam: %q", marked)
	}
	clean := rcv.requests("/clean")
	if len(clean) != 1 || !strings.HasPrefix(clean[0], "X-Postal-Spam: no\r\nX-Postal-Spam-Threshold: 5.0\r\n") ||
		!strings.Contains(clean[0], "X-Postal-Threat: no\r\n") || !strings.Contains(clean[0], "Subject: clean") {
		t.Errorf("clean: %q", clean)
	}
	for _, path := range []string{"/quarantine", "/fail"} {
		if n := len(rcv.requests(path)); n != 0 {
			t.Errorf("%s got %d requests, want none", path, n)
		}
	}

	// The verdicts are on the message rows, the checks beside them.
	type shown struct {
		Inspection struct {
			Inspected     bool    `json:"inspected"`
			Spam          bool    `json:"spam"`
			SpamScore     float64 `json:"spam_score"`
			Threat        bool    `json:"threat"`
			ThreatDetails string  `json:"threat_details"`
		} `json:"inspection"`
		SpamChecks []struct{ Code string } `json:"spam_checks"`
	}
	var s shown
	postalctlJSON(t, in, &s, "message", "show", fmt.Sprint(got["gtube mark"].ID))
	if i := s.Inspection; !i.Inspected || !i.Spam || i.SpamScore < 10 || i.Threat || len(s.SpamChecks) == 0 || s.SpamChecks[0].Code != "GTUBE" {
		t.Errorf("gtube mark: %+v", s)
	}
	s = shown{}
	postalctlJSON(t, in, &s, "message", "show", fmt.Sprint(got["eicar"].ID))
	if i := s.Inspection; !i.Inspected || i.Spam || !i.Threat || !strings.HasPrefix(i.ThreatDetails, "Eicar-Test-Signature") {
		t.Errorf("eicar: %+v", s)
	}
}

// TestScannerDownRetries: with ClamAV unreachable, an incoming message is
// not delivered: it is SoftFail, retried later, and its endpoint gets
// nothing.
func TestScannerDownRetries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	rcv := newRawReceiver(t)
	in := newInstall(t, true)
	in.extra = []string{"CLAMAV_ENABLED=true", "CLAMAV_HOST=127.0.0.1", fmt.Sprintf("CLAMAV_PORT=%d", closed),
		"POSTAL_SMTP_HOSTNAME=postal.test"}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	postalctlJSON(t, in, nil, "route", "add", "acme/mail", "clean@example.com", "--endpoint", "http:"+rcv.URL+"/clean",
		"--format", "raw", "--encoding", "form")
	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	if err := peerSendBody(in.smtpPort, "sender@far.test", "clean@example.com", "unscanned", "Hello."); err != nil {
		t.Fatalf("send: %v\n%s", err, p.stderr)
	}
	var m listedMessage
	waitFor(t, "SoftFail", 60*time.Second, func() bool {
		m = incomingBySubject(t, in)["unscanned"]
		return m.Status == "SoftFail"
	})
	var shown struct {
		Deliveries []struct{ Status, Details string } `json:"deliveries"`
		Queued     *struct{ Attempts int }            `json:"queued"`
	}
	postalctlJSON(t, in, &shown, "message", "show", fmt.Sprint(m.ID))
	if len(shown.Deliveries) != 1 || !strings.Contains(shown.Deliveries[0].Details, "could not be inspected") ||
		!strings.Contains(shown.Deliveries[0].Details, "clamav unavailable") || shown.Queued == nil {
		t.Errorf("message show = %+v: want one SoftFail naming clamav, still queued", shown)
	}
	if n := len(rcv.requests("/clean")); n != 0 {
		t.Errorf("the endpoint got %d unscanned messages", n)
	}
}
