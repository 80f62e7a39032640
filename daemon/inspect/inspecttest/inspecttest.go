// Package inspecttest finds the real scanners tests use: rspamd at
// POSTAL_TEST_RSPAMD_URL (default http://127.0.0.1:11334), spamd at
// POSTAL_TEST_SPAMD_ADDR (127.0.0.1:783) and clamd at POSTAL_TEST_CLAMD_ADDR
// (127.0.0.1:3310), as scripts/ci-services.sh starts them. A scanner that
// does not answer fails the test in CI (CI=true) and skips it elsewhere.
// It also holds the standard test messages: GTUBE (spam to every scanner)
// and EICAR (a virus to every scanner; ci-services.sh gives clamd a
// signature for it).
package inspecttest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// GTUBE is the Generic Test for Unsolicited Bulk Email.
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// EICAR is the anti-virus test file.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Message is a small RFC 5322 message with body as its text.
func Message(body string) []byte {
	return []byte("Received: from mx.example.com (mx.example.com [192.0.2.1]) by mx.test with SMTP; Sat, 05 Dec 2026 03:00:00 +0000\r\n" +
		"From: Sender <sender@example.com>\r\nTo: rcpt@example.org\r\nSubject: inspection test\r\n" +
		"Message-ID: <inspection-test@example.com>\r\nDate: Sat, 05 Dec 2026 03:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + body + "\r\n")
}

// RspamdURL is rspamd's base URL.
func RspamdURL(t testing.TB) string {
	t.Helper()
	u := env("POSTAL_TEST_RSPAMD_URL", "http://127.0.0.1:11334")
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		t.Fatalf("POSTAL_TEST_RSPAMD_URL %q: want http://host:port", u)
	}
	reach(t, "rspamd", "POSTAL_TEST_RSPAMD_URL", p.Host)
	return u
}

// SpamdAddr is spamd's host:port.
func SpamdAddr(t testing.TB) string {
	t.Helper()
	a := env("POSTAL_TEST_SPAMD_ADDR", "127.0.0.1:783")
	reach(t, "spamd", "POSTAL_TEST_SPAMD_ADDR", a)
	return a
}

// ClamdAddr is clamd's host:port.
func ClamdAddr(t testing.TB) string {
	t.Helper()
	a := env("POSTAL_TEST_CLAMD_ADDR", "127.0.0.1:3310")
	reach(t, "clamd", "POSTAL_TEST_CLAMD_ADDR", a)
	return a
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func reach(t testing.TB, what, envName, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		c.Close()
		return
	}
	msg := fmt.Sprintf("%s at %s does not answer (%v)", what, addr, err)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; scripts/ci-services.sh starts it", msg)
	}
	t.Skipf("%s; set %s or run scripts/ci-services.sh", msg, envName)
}
