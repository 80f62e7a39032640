package daemon_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// tmux runs a tmux command on the test's own server socket.
func tmux(t *testing.T, socket string, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// sparkLine returns the dashboard line of a throughput series ("" when the
// pane does not show it).
func sparkLine(pane, name string) string {
	for _, l := range strings.Split(pane, "\n") {
		if strings.HasPrefix(l, name+" ") && strings.HasSuffix(strings.TrimSpace(l), "/min") {
			return l
		}
	}
	return ""
}

// The console under load, as an operator sees it: postald --role all
// delivers to an SMTP sink while `postalctl tui` runs in a detached tmux
// session at 120x40; two captures of the pane some seconds apart must show
// the accepted and sent sparklines moving, read from the Redis counters.
// tmux is required in CI (scripts/ci-services.sh installs it); elsewhere the
// test skips without it.
func TestConsoleInTmuxShowsThroughputMoving(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is missing; scripts/ci-services.sh installs it")
		}
		t.Skip("tmux is not installed")
	}
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
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")
	const redisURL = "redis://127.0.0.1:6379/0"
	p := startPostald(t, in, redisURL, "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })

	// The console runs with the same environment overrides as postald.
	_, postalctl := binaries(t)
	script := filepath.Join(in.dir, "console.sh")
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range in.env(redisURL)[len(os.Environ()):] {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(v, "'", `'\''`))
	}
	fmt.Fprintf(&b, "export TERM=xterm-256color\nexec '%s' --config '%s' tui --refresh 500ms\n", postalctl, in.config)
	if err := os.WriteFile(script, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(in.dir, "tmux.sock")
	tmux(t, socket, "new-session", "-d", "-s", "console", "-x", "120", "-y", "40", script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", socket, "kill-server").Run() })
	capture := func() string { return tmux(t, socket, "capture-pane", "-p", "-t", "console") }

	var before string
	waitFor(t, "the dashboard", 30*time.Second, func() bool {
		before = capture()
		return sparkLine(before, "sent") != "" && strings.Contains(before, "Database  ok") && strings.Contains(before, "Redis     ok")
	})

	const n = 40
	for i := range n {
		if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", fmt.Sprintf("r%d@dest.test", i), "load"); err != nil {
			t.Fatalf("send %d: %v\n%s", i, err, p.stderr)
		}
	}
	snk.wait(t, n, 60*time.Second)
	var after string
	// A frame read after the load: every message delivered (the queue is
	// empty again), the sparklines changed, and they come from the counters.
	waitFor(t, "the sparklines to move", 60*time.Second, func() bool {
		after = capture()
		return sparkLine(after, "sent") != sparkLine(before, "sent") && sparkLine(after, "accepted") != sparkLine(before, "accepted") &&
			strings.Contains(after, "· Redis counters") && strings.Contains(after, "SQL    0 queued")
	})
	t.Logf("before:\n%s\nafter:\n%s", before, after)
	if strings.Contains(after, "Processes (0)") {
		t.Fatalf("no live process on the dashboard under load:\n%s", after)
	}
}
