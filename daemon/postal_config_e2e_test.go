package daemon_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An operator coming from Postal keeps the postal.yml Postal's installer
// wrote, byte for byte: postald runs every role on it (its own SQLite beside
// the file, Redis from the environment), logs the keys Postal ignores as
// warnings and says once where Postal's MariaDB and its own data live, and
// serves health on HEALTH_SERVER_PORT as Postal's processes do.
func TestAllRolesRunOnPostalInstallerConfig(t *testing.T) {
	r := &redisProc{port: freePort(t)}
	r.start(t)
	t.Cleanup(r.stop)
	postald, postalctl := binaries(t)

	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "config", "testdata", "warnings", "postal_installer_v3.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "postal.yml")
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	healthPort, webPort, smtpPort := freePort(t), freePort(t), freePort(t)
	env := append(os.Environ(),
		"REDIS_URL="+r.url(),
		"REDIS_KEY_PREFIX="+testKeyPrefix(t),
		fmt.Sprintf("HEALTH_SERVER_PORT=%d", healthPort),
		"HEALTH_SERVER_BIND_ADDRESS=127.0.0.1",
		fmt.Sprintf("WEB_SERVER_DEFAULT_PORT=%d", webPort),
		fmt.Sprintf("SMTP_SERVER_DEFAULT_PORT=%d", smtpPort),
		"SMTP_SERVER_DEFAULT_BIND_ADDRESS=127.0.0.1",
		"LOGGING_FORMAT=json",
	)
	for _, args := range [][]string{{"signing-key", "generate"}, {"upgrade"}} {
		cmd := exec.Command(postalctl, append([]string{"--config", cfg}, args...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postalctl %v: %v\n%s", args, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "postal.sqlite")); err != nil {
		t.Fatalf("own database beside postal.yml: %v", err)
	}

	cmd := exec.Command(postald, "--config", cfg, "--role", "all")
	cmd.Env = env
	p := startCmd(t, cmd)
	waitFor(t, "/ready 200 on HEALTH_SERVER_PORT", 30*time.Second, func() bool { return readyStatus(healthPort) == 200 })
	if got := readyStatus(webPort); got != 200 {
		t.Fatalf("web server /ready = %d, want 200", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("postald exited with %v after SIGTERM\n%s", err, p.stderr)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("postald did not stop within 45s of SIGTERM\n%s", p.stderr)
	}
	logs := p.stderr.String()
	for _, want := range []string{
		`"key":"dns.return_path"`,
		`"key":"message_db.prefix"`,
		"main_db/message_db describe Postal's MariaDB at 127.0.0.1:3306",
		fmt.Sprintf(`"addr":"127.0.0.1:%d"`, healthPort),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "main_db/message_db describe"); n != 1 {
		t.Errorf("the Postal database note appears %d times, want once", n)
	}
}
