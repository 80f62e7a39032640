package inspect_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/inspect"
	"github.com/postalgo/postal/daemon/inspect/inspecttest"
)

var (
	spam  = inspecttest.Message("Buy now.\r\n" + inspecttest.GTUBE)
	ham   = inspecttest.Message("Hello Bob,\r\n\r\nthe minutes of Tuesday's meeting are below.\r\n\r\nAlice")
	virus = inspecttest.Message("see below\r\n" + inspecttest.EICAR)
	env   = inspect.Envelope{MailFrom: "sender@example.com", RcptTo: "rcpt@example.org", Token: "abc123"}
)

func hasCheck(cs []inspect.Check, code string) bool {
	for _, c := range cs {
		if c.Code == code {
			return true
		}
	}
	return false
}

func TestRspamdSpamAndHam(t *testing.T) {
	r := &inspect.Rspamd{URL: inspecttest.RspamdURL(t), Timeout: 20 * time.Second}
	got, err := r.Check(context.Background(), env, spam)
	if err != nil {
		t.Fatal(err)
	}
	if got.Score < 10 || !hasCheck(got.Checks, "GTUBE") {
		t.Errorf("GTUBE: score %v, checks %+v; want >= 10 with GTUBE", got.Score, got.Checks)
	}
	got, err = r.Check(context.Background(), env, ham)
	if err != nil {
		t.Fatal(err)
	}
	if got.Score >= 5 || hasCheck(got.Checks, "GTUBE") {
		t.Errorf("ham: score %v, checks %+v; want < 5 without GTUBE", got.Score, got.Checks)
	}
}

func TestSpamdSpamAndHam(t *testing.T) {
	s := &inspect.Spamd{Addr: inspecttest.SpamdAddr(t), Timeout: 20 * time.Second}
	got, err := s.Check(context.Background(), env, spam)
	if err != nil {
		t.Fatal(err)
	}
	if got.Score < 100 || !hasCheck(got.Checks, "GTUBE") {
		t.Errorf("GTUBE: score %v, checks %+v; want >= 100 with GTUBE", got.Score, got.Checks)
	}
	if got.Checks[0].Code != "GTUBE" || !strings.Contains(got.Checks[0].Description, "Unsolicited") {
		t.Errorf("first check %+v; want GTUBE with its description", got.Checks[0])
	}
	got, err = s.Check(context.Background(), env, ham)
	if err != nil {
		t.Fatal(err)
	}
	if got.Score >= 5 || hasCheck(got.Checks, "GTUBE") {
		t.Errorf("ham: score %v, checks %+v; want < 5 without GTUBE", got.Score, got.Checks)
	}
}

func TestSpamdOutgoingIgnoresHopRules(t *testing.T) {
	s := &inspect.Spamd{Addr: inspecttest.SpamdAddr(t), Timeout: 20 * time.Second}
	noRcvd := []byte(strings.SplitN(string(ham), "\r\n", 2)[1]) // without its Received header
	in, err := s.Check(context.Background(), env, noRcvd)
	if err != nil {
		t.Fatal(err)
	}
	if !hasCheck(in.Checks, "NO_RELAYS") && !hasCheck(in.Checks, "NO_RECEIVED") {
		t.Fatalf("incoming checks %+v: want NO_RELAYS or NO_RECEIVED for a message without Received", in.Checks)
	}
	out := env
	out.Outgoing = true
	got, err := s.Check(context.Background(), out, noRcvd)
	if err != nil {
		t.Fatal(err)
	}
	if hasCheck(got.Checks, "NO_RELAYS") || hasCheck(got.Checks, "NO_RECEIVED") {
		t.Errorf("outgoing checks %+v keep rules Postal ignores for outgoing mail", got.Checks)
	}
}

func TestClamAVFindsEICAR(t *testing.T) {
	c := &inspect.ClamAV{Addr: inspecttest.ClamdAddr(t), Timeout: 20 * time.Second}
	got, err := c.Scan(context.Background(), virus)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Threat || !strings.HasPrefix(got.Details, "Eicar-Test-Signature") {
		t.Errorf("EICAR: %+v; want a threat named Eicar-Test-Signature", got)
	}
	got, err = c.Scan(context.Background(), ham)
	if err != nil {
		t.Fatal(err)
	}
	if got.Threat || got.Details != "No threats found" {
		t.Errorf("clean: %+v; want no threat", got)
	}
}

func TestClamAVChunks(t *testing.T) {
	// The signature straddles chunk boundaries: clamd reassembles the stream.
	c := &inspect.ClamAV{Addr: inspecttest.ClamdAddr(t), Timeout: 20 * time.Second, ChunkSize: 7}
	got, err := c.Scan(context.Background(), virus)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Threat {
		t.Errorf("EICAR in 7-byte chunks: %+v; want a threat", got)
	}
}

func TestInspectorCombines(t *testing.T) {
	in := inspect.New(&inspect.Rspamd{URL: inspecttest.RspamdURL(t), Timeout: 20 * time.Second},
		&inspect.ClamAV{Addr: inspecttest.ClamdAddr(t), Timeout: 20 * time.Second}, 1<<20)
	both := inspecttest.Message(inspecttest.GTUBE + "\r\n" + inspecttest.EICAR)
	r, err := in.Inspect(context.Background(), env, both)
	if err != nil {
		t.Fatal(err)
	}
	if !r.SpamChecked || !r.ThreatChecked || r.SpamScore < 10 || !r.Threat || r.Skipped != "" {
		t.Errorf("GTUBE+EICAR: %+v", r)
	}
	small := inspect.New(&inspect.Spamd{Addr: "127.0.0.1:1"}, nil, 100)
	r, err = small.Inspect(context.Background(), env, both)
	if err != nil || r.SpamChecked || r.Skipped == "" {
		t.Errorf("over the size limit: %+v, %v; want skipped without asking the scanner", r, err)
	}
	var none *inspect.Inspector
	if r, err := none.Inspect(context.Background(), env, both); err != nil || r.SpamChecked || r.ThreatChecked {
		t.Errorf("nil inspector: %+v, %v", r, err)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestScannerDownIsUnavailable(t *testing.T) {
	addr := closedAddr(t)
	hung, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cases := []struct {
		name    string
		in      *inspect.Inspector
		scanner string
	}{
		{"spamd refused", inspect.New(&inspect.Spamd{Addr: addr}, nil, 0), "spamd"},
		{"clamd refused", inspect.New(nil, &inspect.ClamAV{Addr: addr}, 0), "clamav"},
		{"rspamd refused", inspect.New(&inspect.Rspamd{URL: "http://" + addr}, nil, 0), "rspamd"},
		{"rspamd 503", inspect.New(&inspect.Rspamd{URL: srv.URL}, nil, 0), "rspamd"},
		{"spamd silent", inspect.New(&inspect.Spamd{Addr: hung.Addr().String(), Timeout: 200 * time.Millisecond}, nil, 0), "spamd"},
		{"clamd silent", inspect.New(nil, &inspect.ClamAV{Addr: hung.Addr().String(), Timeout: 200 * time.Millisecond}, 0), "clamav"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.in.Inspect(context.Background(), env, ham)
			var u *inspect.UnavailableError
			if !errors.As(err, &u) || u.Scanner != c.scanner {
				t.Fatalf("got %+v, %v; want an UnavailableError from %s", r, err, c.scanner)
			}
		})
	}
}

func TestContextCancelsAScan(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := (&inspect.ClamAV{Addr: hung.Addr().String(), Timeout: time.Hour}).Scan(ctx, ham)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v; want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a cancelled scan did not return")
	}
}
