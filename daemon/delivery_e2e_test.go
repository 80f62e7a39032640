package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// sink is an SMTP server that keeps what it receives.
type sink struct {
	mu   sync.Mutex
	msgs []sunk
	got  chan struct{}
}

type sunk struct {
	from string
	to   []string
	data []byte
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (ss *sinkSession) AuthMechanisms() []string { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, sunk{ss.from, ss.to, b})
	ss.s.mu.Unlock()
	ss.s.got <- struct{}{}
	return nil
}
func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

func startSink(t *testing.T) (*sink, int) {
	t.Helper()
	s := &sink{got: make(chan struct{}, 100)}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s, ln.Addr().(*net.TCPAddr).Port
}

func (s *sink) wait(t *testing.T, n int, d time.Duration) []sunk {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]sunk(nil), s.msgs...)
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("sink got %d messages within %s, want %d", len(s.msgs), d, n)
		}
	}
}

func postalctlJSON(t *testing.T, in install, out any, args ...string) {
	t.Helper()
	_, postalctl := binaries(t)
	cmd := exec.Command(postalctl, append([]string{"--config", in.config, "--json"}, args...)...)
	cmd.Env = in.env("redis://127.0.0.1:6379/0")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("postalctl %v: %v\n%s", args, err, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("postalctl %v: %v\n%s", args, err, b)
		}
	}
}

func sendMail(t *testing.T, port int, key, from, to, subject string) error {
	t.Helper()
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Auth(sasl.NewPlainClient("", "app", key)); err != nil {
		return err
	}
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 40)
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// The delivery spine, end to end with the built binary: a message submitted
// with AUTH reaches an SMTP sink found by MX, DKIM-signed with the key that
// `domain add` published; and a message accepted by an smtp-server that is
// then killed with SIGKILL is delivered once postald runs again.
func TestSubmittedMailIsDeliveredSignedAndSurvivesKill(t *testing.T) {
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
	}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	var dom struct {
		Records []struct{ Purpose, Name, Value string }
	}
	postalctlJSON(t, in, &dom, "domain", "add", "acme/mail", "example.com", "--verified")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")
	txt := map[string]string{}
	for _, r := range dom.Records {
		if r.Purpose == "dkim" {
			txt[r.Name] = r.Value
		}
	}

	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", "bob@dest.test", "first"); err != nil {
		t.Fatalf("send: %v\n%s", err, p.stderr)
	}
	got := snk.wait(t, 1, 30*time.Second)
	if len(got[0].to) != 1 || got[0].to[0] != "bob@dest.test" || !strings.HasSuffix(got[0].from, "@rp.postal.test") {
		t.Fatalf("sink envelope = from %q to %v", got[0].from, got[0].to)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got[0].data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := txt[strings.TrimSuffix(name, ".")]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no TXT at %s", name)
		},
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.com" {
		t.Fatalf("DKIM verification = %+v, %v\n%s", verifs, err, got[0].data)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	p.done <- nil
	// A cgo build signs through libcrypto (libssl3 is installed where
	// tests run); a CGO_ENABLED=0 build says why it cannot.
	want := "dkim signing with libcrypto"
	if !cgoLinux {
		want = "dkim signing with crypto/rsa"
	}
	if !strings.Contains(p.stderr.String(), want) {
		t.Errorf("postald did not log %q:\n%s", want, p.stderr)
	}

	// Only the smtp-server runs: the message is accepted, then the process dies.
	p = startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "smtp-server")
	waitFor(t, "smtp-server up", 30*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.smtpPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", "carol@dest.test", "survivor"); err != nil {
		t.Fatalf("send to smtp-server: %v\n%s", err, p.stderr)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil

	startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	got = snk.wait(t, 2, 60*time.Second)
	if got[1].to[0] != "carol@dest.test" || !bytes.Contains(got[1].data, []byte("Subject: survivor")) {
		t.Fatalf("second delivery = %v\n%s", got[1].to, got[1].data)
	}
}
