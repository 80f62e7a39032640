package daemon_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Two installations (two databases) configured with one Redis key prefix:
// the second postald refuses to start, saying why and what to do, while
// the first keeps running. `postalctl queue reset` hands the prefix to the
// second: the first's running postald stops at its next check, the second
// starts, and the first is now the one refused.
func TestSecondInstallationOnOnePrefixIsRefused(t *testing.T) {
	const redisURL = "redis://127.0.0.1:6379/0"
	a, b := newInstall(t, true), newInstall(t, true)
	b.prefix = a.prefix

	exitOf := func(p *proc) (int, string) {
		t.Helper()
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			if err == nil {
				return 0, p.stderr.String()
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("postald exited with %v, want a refusal\n%s", err, p.stderr)
			}
			return ee.ExitCode(), p.stderr.String()
		case <-time.After(60 * time.Second):
			t.Fatalf("postald still runs after 60 s, want it to stop\n%s", p.stderr)
		}
		return 0, ""
	}
	refused := func(p *proc) {
		t.Helper()
		code, log := exitOf(p)
		if code != 2 || !strings.Contains(log, "belongs to another installation") ||
			!strings.Contains(log, "give this one its own redis.key_prefix") || !strings.Contains(log, "postalctl queue reset") {
			t.Fatalf("exit %d, want 2 with the reason and the remedy:\n%s", code, log)
		}
	}

	pa := startPostald(t, a, redisURL, "--role", "all")
	waitFor(t, "/ready 200 of the first installation", 30*time.Second, func() bool { return readyStatus(a.healthPort) == 200 })
	refused(startPostald(t, b, redisURL, "--role", "all"))
	if got := readyStatus(a.healthPort); got != 200 {
		t.Fatalf("first installation /ready = %d after the refusal, want 200", got)
	}

	var reset struct {
		FormerOwner  string `json:"former_owner"`
		Installation string `json:"installation"`
		Deleted      int    `json:"deleted"`
	}
	postalctlJSON(t, b, &reset, "queue", "reset", "--yes")
	if reset.FormerOwner == "" || reset.FormerOwner == reset.Installation || reset.Deleted == 0 {
		t.Fatalf("reset = %+v, want the first installation's prefix handed over", reset)
	}
	// The first installation's running postald notices within its check
	// interval and stops.
	if code, log := exitOf(pa); code != 1 || !strings.Contains(log, "belongs to another installation") {
		t.Fatalf("first installation after losing its prefix: exit %d, want 1 with the reason\n%s", code, log)
	}
	startPostald(t, b, redisURL, "--role", "all")
	waitFor(t, "/ready 200 of the second installation", 30*time.Second, func() bool { return readyStatus(b.healthPort) == 200 })
	refused(startPostald(t, a, redisURL, "--role", "all"))
}
