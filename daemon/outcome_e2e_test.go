package daemon_test

import (
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
	_ "github.com/postalgo/postal/daemon/store" // registers the sqlite driver
)

var (
	hookBuildOnce sync.Once
	hookBin       string
	hookBuildErr  error
)

// hookedPostald builds postald with -tags postaltest, which compiles in
// the worker's crash-before-commit hook (daemon/worker/testhook_on.go).
func hookedPostald(t *testing.T) string {
	t.Helper()
	binaries(t) // makes binDir, which TestMain removes
	hookBuildOnce.Do(func() {
		hookBin = filepath.Join(binDir, "hooked", "postald")
		out, err := exec.Command("go", "build", "-tags", "postaltest", "-o", hookBin, "github.com/postalgo/postal/cmd/postald").CombinedOutput()
		if err != nil {
			hookBuildErr = fmt.Errorf("go build -tags postaltest: %v\n%s", err, out)
		}
	})
	if hookBuildErr != nil {
		t.Fatal(hookBuildErr)
	}
	return hookBin
}

// rejectingSink refuses recipients whose local part starts with "perm"
// (550 at RCPT) and accepts everything else.
type rejectingSink struct{}

func (rejectingSink) NewSession(*smtp.Conn) (smtp.Session, error) { return rejectingSession{}, nil }

type rejectingSession struct{}

func (rejectingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (rejectingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "perm") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	}
	return nil
}
func (rejectingSession) Data(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
func (rejectingSession) Reset()                 {}
func (rejectingSession) Logout() error          { return nil }

// A worker killed with SIGKILL after a hard-failed send and before its
// outcome committed leaves no suppression, bounce or webhook request behind;
// the process that takes the work over (as soon as the dead one's heartbeat
// is gone) records the outcome with exactly one of each.
func TestKillBetweenSendAndCommitRepeatsNoEffect(t *testing.T) {
	srv := smtp.NewServer(rejectingSink{})
	srv.Domain = "sink.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.MX("example.com.", 10, "mx.dest.test."),
		dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	marker := filepath.Join(t.TempDir(), "crashed")
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", ln.Addr().(*net.TCPAddr).Port),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
		"POSTAL_TEST_CRASH_BEFORE_COMMIT=" + marker,
	}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	postalctlJSON(t, in, nil, "webhook", "add", "acme/mail", "https://hooks.test/all", "--all-events")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")

	db, err := sql.Open("sqlite", "file:"+filepath.Join(in.dir, "postal.sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}

	postald := hookedPostald(t)
	run := func() *proc {
		cmd := exec.Command(postald, "--config", in.config, "--role", "all")
		cmd.Env = in.env("redis://127.0.0.1:6379/0")
		return startCmd(t, cmd)
	}

	p := run()
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", "perm@dest.test", "doomed"); err != nil {
		t.Fatalf("send: %v", err)
	}
	select {
	case <-p.done:
		p.done <- nil
	case <-time.After(60 * time.Second):
		t.Fatal("the worker did not reach its outcome commit")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the process died without the hook: %v", err)
	}
	// Sent (the 550 was received), killed before the commit: nothing of the
	// outcome is durable.
	if n := count(`SELECT count(*) FROM suppressions`); n != 0 {
		t.Fatalf("%d suppressions before the outcome committed", n)
	}
	if n := count(`SELECT count(*) FROM webhook_requests`); n != 0 {
		t.Fatalf("%d webhook requests before the outcome committed", n)
	}
	if n := count(`SELECT count(*) FROM messages WHERE bounce = ?`, true); n != 0 {
		t.Fatalf("%d bounces before the outcome committed", n)
	}

	killed := time.Now()
	p = run()
	defer func() {
		if t.Failed() {
			t.Logf("postald log:\n%s", p.stderr)
		}
	}()
	waitFor(t, "the message to hard-fail", 90*time.Second, func() bool {
		return count(`SELECT count(*) FROM messages WHERE rcpt_to = 'perm@dest.test' AND status = 'HardFail'`) == 1
	})
	t.Logf("outcome recorded %s after the kill", time.Since(killed).Round(time.Millisecond))
	if n := count(`SELECT count(*) FROM suppressions WHERE address = 'perm@dest.test'`); n != 1 {
		t.Errorf("%d suppressions, want 1", n)
	}
	if n := count(`SELECT count(*) FROM messages WHERE bounce = ?`, true); n != 1 {
		t.Errorf("%d bounces, want 1", n)
	}
	if n := count(`SELECT count(*) FROM webhook_requests WHERE event = 'MessageDeliveryFailed'`); n != 1 {
		t.Errorf("%d MessageDeliveryFailed requests, want 1", n)
	}
	if n := count(`SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE m.rcpt_to = 'perm@dest.test' AND d.status = 'HardFail'`); n != 1 {
		t.Errorf("%d HardFail deliveries, want 1", n)
	}
}
