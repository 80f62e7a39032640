package daemon_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postalgo/postal/ctl/importpostal/postaltest"
	ourdkim "github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// Moving from Postal, end to end with the built binaries: `postalctl
// import-postal` reads a Postal-shaped MariaDB; postald then accepts mail
// authenticated with the SMTP key Postal issued, signs it with the DKIM key
// and selector Postal published, and sends it with the server token Postal
// used in its return path, so nothing in DNS or in clients changes.
func TestImportedPostalInstallationSendsUnchanged(t *testing.T) {
	p := postaltest.New(t)
	fx := p.Seed()
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
		"MAIN_DB_HOST=" + p.Conn.Host, "MAIN_DB_PORT=" + strconv.Itoa(p.Conn.Port),
		"MAIN_DB_USERNAME=" + p.Conn.Username, "MAIN_DB_PASSWORD=" + p.Conn.Password, "MAIN_DB_DATABASE=" + p.MainDatabase,
		"MESSAGE_DB_HOST=" + p.Conn.Host, "MESSAGE_DB_PORT=" + strconv.Itoa(p.Conn.Port),
		"MESSAGE_DB_USERNAME=" + p.Conn.Username, "MESSAGE_DB_PASSWORD=" + p.Conn.Password,
		"MESSAGE_DB_DATABASE_NAME_PREFIX=" + p.Prefix,
	}
	var rep struct {
		Counts map[string]struct{ Created int }
	}
	postalctlJSON(t, in, &rep, "import-postal")
	if rep.Counts["servers"].Created != 1 || rep.Counts["credentials"].Created != 3 {
		t.Fatalf("import counts = %+v", rep.Counts)
	}

	proc := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
	if err := sendMail(t, in.smtpPort, fx.SMTPKey, "alice@"+fx.Domain, "bob@dest.test", "moved from Postal"); err != nil {
		t.Fatalf("send with the SMTP key Postal issued: %v\n%s", err, proc.stderr)
	}
	got := snk.wait(t, 1, 30*time.Second)
	// <server token>+<message token>@<return path domain>
	if want := strings.ToLower(fx.ServerToken) + "+"; !strings.HasPrefix(got[0].from, want) ||
		!strings.HasSuffix(got[0].from, "@rp.postal.test") {
		t.Errorf("return path = %q, want %s<message token>@rp.postal.test (the server token Postal used)", got[0].from, want)
	}
	selector := "postal-" + fx.DKIMIdentifier
	record := map[string]string{ourdkim.RecordName(selector, fx.Domain): ourdkim.RecordValue(&fx.DKIMKey.PublicKey)}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got[0].data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := record[strings.TrimSuffix(name, ".")]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no TXT at %s", name)
		},
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != fx.Domain {
		t.Fatalf("DKIM against the record Postal published (%s) = %+v, %v\n%s", selector, verifs, err, got[0].data)
	}
	if !bytes.Contains(got[0].data, []byte("s="+selector+";")) {
		t.Errorf("signature does not use selector %s:\n%s", selector, got[0].data)
	}
	_ = proc.cmd.Process.Signal(syscall.SIGTERM)
	<-proc.done
	proc.done <- nil

	// Importing again changes nothing.
	var again struct {
		Changes []any
	}
	postalctlJSON(t, in, &again, "import-postal")
	if len(again.Changes) != 0 {
		t.Fatalf("second import changed %v", again.Changes)
	}
}
