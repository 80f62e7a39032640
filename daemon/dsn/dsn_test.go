package dsn_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/untrusted"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

var (
	utc    = time.UTC
	plus2  = time.FixedZone("", 2*3600)
	minus4 = time.FixedZone("", -4*3600)
)

func goldenParams() dsn.Params {
	return dsn.Params{
		ReportingMTA: "mx1.postal.example",
		From:         "Mail Delivery System <MAILER-DAEMON@mx1.postal.example>",
		To:           "alice@example.com",
		Arrival:      time.Date(2025, 6, 2, 9, 59, 58, 0, utc),
		Date:         time.Date(2025, 6, 2, 10, 5, 0, 0, utc),
		MessageID:    "<dsn-1234@mx1.postal.example>",
		Recipients: []dsn.Recipient{
			{
				Address: "bob@example.org", Action: dsn.ActionFailed, Status: "5.1.1",
				DiagnosticCode: "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
				RemoteMTA:      "mx.example.org",
				LastAttempt:    time.Date(2025, 6, 2, 10, 4, 59, 0, utc),
			},
			{
				Address: "carol@example.net", Action: dsn.ActionDelayed, Status: "4.2.2",
				DiagnosticCode: "smtp; 452 4.2.2 Mailbox full", RemoteMTA: "mx.example.net",
				LastAttempt: time.Date(2025, 6, 2, 10, 4, 0, 0, utc),
			},
		},
		OriginalHeaders:   []byte("From: Alice <alice@example.com>\nTo: bob@example.org, carol@example.net\nSubject: Hello\nMessage-ID: <orig-1@example.com>\nX-Postal-MsgID: AbCdEf123456\n\nbody is dropped\n"),
		OriginalMessageID: "orig-1@example.com",
	}
}

func TestBuildGolden(t *testing.T) {
	got, err := dsn.Build(goldenParams())
	if err != nil {
		t.Fatal(err)
	}
	again, err := dsn.Build(goldenParams())
	if err != nil || !bytes.Equal(got, again) {
		t.Fatal("Build is not deterministic")
	}
	path := filepath.Join("testdata", "build.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Build output differs from %s (run go test -update if intended)\n--- got ---\n%s", path, got)
	}
}

// checkWire asserts the properties every built message has on the wire.
func checkWire(t *testing.T, msg []byte) {
	t.Helper()
	if i := bytes.IndexByte(bytes.ReplaceAll(msg, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Errorf("bare LF in output near byte %d", i)
	}
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("bare CR in output")
	}
	for _, line := range strings.Split(string(msg), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes exceeds 998", len(line))
		}
	}
	// Unfold the header before looking for fields.
	head := strings.ReplaceAll(string(msg[:bytes.Index(msg, []byte("\r\n\r\n"))]), "\r\n ", " ")
	for _, want := range []string{"\r\nMIME-Version: 1.0\r\n", "\r\nAuto-Submitted: auto-replied\r\n",
		"\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="} {
		if !strings.Contains(head, want) {
			t.Errorf("header lacks %q", strings.TrimSpace(want))
		}
	}
}

func TestBuildParseRoundTrip(t *testing.T) {
	long := "smtp; 550-5.7.1 " + strings.Repeat("this server does not accept mail from your network ", 8) + "end"
	tests := []struct {
		name   string
		mutate func(*dsn.Params)
	}{
		{"golden params", func(*dsn.Params) {}},
		{"one failure, minimal fields", func(p *dsn.Params) {
			p.Arrival = time.Time{}
			p.OriginalHeaders = nil
			p.OriginalMessageID = ""
			p.Recipients = []dsn.Recipient{{Address: "x@example.org", Action: dsn.ActionFailed, Status: "5.0.0"}}
		}},
		{"long diagnostic is folded and restored", func(p *dsn.Params) {
			p.Recipients[0].DiagnosticCode = long
		}},
		{"internationalised address", func(p *dsn.Params) {
			p.Recipients[0].Address = "jöhn+tag=1@bücher.example"
		}},
		{"original Message-ID without returned headers", func(p *dsn.Params) {
			p.OriginalHeaders = nil
		}},
		{"human text override with UTF-8 and long lines", func(p *dsn.Params) {
			p.HumanText = "Dein Nachricht konnte nicht zugestellt werden – sorry.\n" + strings.Repeat("x", 1200)
		}},
		{"8-bit original headers", func(p *dsn.Params) {
			p.OriginalHeaders = []byte("Subject: Grüße\r\nMessage-ID: <u@example.com>\r\n")
			p.OriginalMessageID = "u@example.com"
		}},
		{"dates keep their zones", func(p *dsn.Params) {
			p.Date = p.Date.In(plus2)
			p.Arrival = p.Arrival.In(minus4)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := goldenParams()
			tt.mutate(&p)
			msg, err := dsn.Build(p)
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, msg)
			rep, err := dsn.Parse(msg)
			if err != nil {
				t.Fatalf("Parse(Build(p)): %v\n%s", err, msg)
			}
			if rep.ReportType != "delivery-status" || rep.ReportingMTA != p.ReportingMTA {
				t.Errorf("report type %q, reporting MTA %q", rep.ReportType, rep.ReportingMTA)
			}
			if !rep.Arrival.Equal(p.Arrival) {
				t.Errorf("arrival %v, want %v", rep.Arrival, p.Arrival)
			}
			if rep.OriginalMessageID != p.OriginalMessageID {
				t.Errorf("original Message-ID %q, want %q", rep.OriginalMessageID, p.OriginalMessageID)
			}
			if len(rep.Recipients) != len(p.Recipients) {
				t.Fatalf("got %d recipients, want %d", len(rep.Recipients), len(p.Recipients))
			}
			for i, want := range p.Recipients {
				got := rep.Recipients[i]
				if !got.LastAttempt.Equal(want.LastAttempt) {
					t.Errorf("recipient %d last attempt %v, want %v", i, got.LastAttempt, want.LastAttempt)
				}
				got.LastAttempt, want.LastAttempt = time.Time{}, time.Time{}
				if got != want {
					t.Errorf("recipient %d =\n  %+v\nwant\n  %+v", i, got, want)
				}
			}
			if p.OriginalHeaders != nil {
				lf := strings.ReplaceAll(string(p.OriginalHeaders), "\r\n", "\n")
				block, _, _ := strings.Cut(lf, "\n\n")
				want := strings.ReplaceAll(strings.TrimSuffix(block, "\n")+"\n", "\n", "\r\n")
				if string(rep.OriginalHeaders) != want {
					t.Errorf("returned headers %q, want %q", rep.OriginalHeaders, want)
				}
			}
		})
	}
}

func TestBuildSubject(t *testing.T) {
	tests := []struct {
		actions []string
		want    string
	}{
		{[]string{dsn.ActionFailed}, dsn.SubjectFailed},
		{[]string{dsn.ActionDelayed, dsn.ActionFailed}, dsn.SubjectFailed},
		{[]string{dsn.ActionDelayed}, dsn.SubjectDelayed},
		{[]string{dsn.ActionDelivered}, dsn.SubjectOther},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.actions, "+"), func(t *testing.T) {
			p := goldenParams()
			p.Recipients = nil
			for _, a := range tt.actions {
				status := "5.0.0"
				if a != dsn.ActionFailed {
					status = "4.0.0"
				}
				p.Recipients = append(p.Recipients, dsn.Recipient{Address: "r@example.org", Action: a, Status: status})
			}
			msg, err := dsn.Build(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(msg, []byte("\r\nSubject: "+tt.want+"\r\n")) {
				t.Errorf("subject is not %q", tt.want)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*dsn.Params)
		want   string
	}{
		{"no reporting MTA", func(p *dsn.Params) { p.ReportingMTA = "" }, "dsn: ReportingMTA is required"},
		{"no To", func(p *dsn.Params) { p.To = " " }, "dsn: To is required"},
		{"no Message-ID", func(p *dsn.Params) { p.MessageID = "<>" }, "dsn: MessageID is required"},
		{"no date", func(p *dsn.Params) { p.Date = time.Time{} }, "dsn: Date is required"},
		{"no recipient", func(p *dsn.Params) { p.Recipients = nil }, "dsn: at least one recipient is required"},
		{"header injection", func(p *dsn.Params) { p.To = "a@example.com\r\nBcc: x@example.com" }, "dsn: To contains a control character"},
		{"bad action", func(p *dsn.Params) { p.Recipients[1].Action = "bounced" },
			`dsn: Recipients[1].Action "bounced" is not one of failed, delayed, delivered, relayed, expanded`},
		{"bad status", func(p *dsn.Params) { p.Recipients[0].Status = "550" },
			`dsn: Recipients[0].Status "550" is not an enhanced status code like 5.1.1`},
		{"bad remote MTA", func(p *dsn.Params) { p.Recipients[0].RemoteMTA = "mx; evil" },
			`dsn: Recipients[0].RemoteMTA "mx; evil" is not a host name`},
		{"empty address", func(p *dsn.Params) { p.Recipients[0].Address = "" }, "dsn: Recipients[0].Address is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := goldenParams()
			tt.mutate(&p)
			if _, err := dsn.Build(p); err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBuildCleansDiagnostic(t *testing.T) {
	p := goldenParams()
	p.Recipients = []dsn.Recipient{{Address: "b@example.org", Action: dsn.ActionFailed, Status: "5.0.0",
		DiagnosticCode: "smtp; 550-first line\r\n550   second\tline \xff"}}
	msg, err := dsn.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := dsn.Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Recipients[0].DiagnosticCode, "smtp; 550-first line 550 second line ?"; got != want {
		t.Errorf("diagnostic %q, want %q", got, want)
	}
}

func TestParseOtherMTAs(t *testing.T) {
	tests := []struct {
		file           string
		reportingMTA   string
		arrival        time.Time
		recipients     []dsn.Recipient
		originalID     string
		postalID       string
		headersContain string
	}{
		{
			file: "postfix.eml", reportingMTA: "mx.example.net",
			arrival: time.Date(2025, 6, 3, 9, 12, 43, 0, utc),
			recipients: []dsn.Recipient{{
				Address: "nobody@example.org", Action: "failed", Status: "5.1.1", RemoteMTA: "mail.example.org",
				DiagnosticCode: "smtp; 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
			}},
			originalID: "7a1c9e@example.com", postalID: "Xk3bq9Lm2PzA", headersContain: "Subject: Your receipt",
		},
		{
			file: "exim.eml", reportingMTA: "relay.example.net",
			recipients: []dsn.Recipient{
				{Address: "carol@example.org", Action: "failed", Status: "5.0.0", RemoteMTA: "mx.example.org",
					DiagnosticCode: "smtp; 550 5.2.1 Mailbox disabled"},
				{Address: "dave@example.org", Action: "failed", Status: "5.0.0", RemoteMTA: "mx.example.org",
					DiagnosticCode: "smtp; 552 5.2.2 Mailbox full"},
			},
			originalID: "order-991@example.com", postalID: "Pq7RtY2vW9sE", headersContain: "Subject: Order shipped",
		},
		{
			file: "delayed-nested.eml", reportingMTA: "gw.example.net",
			arrival: time.Date(2025, 6, 5, 4, 0, 0, 0, minus4),
			recipients: []dsn.Recipient{{
				Address: "erin@example.org", Action: "delayed", Status: "4.4.7", RemoteMTA: "mx2.example.org",
				DiagnosticCode: "SMTP; 451 4.3.0 Temporary lookup failure",
				LastAttempt:    time.Date(2025, 6, 5, 7, 55, 0, 0, minus4),
			}},
			originalID: "newsletter-5@example.com", headersContain: "Subject: June news",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := dsn.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if rep.ReportType != "delivery-status" || rep.ReportingMTA != tt.reportingMTA || !rep.Arrival.Equal(tt.arrival) {
				t.Errorf("report type %q, reporting MTA %q, arrival %v", rep.ReportType, rep.ReportingMTA, rep.Arrival)
			}
			if len(rep.Recipients) != len(tt.recipients) {
				t.Fatalf("got %d recipients %+v, want %d", len(rep.Recipients), rep.Recipients, len(tt.recipients))
			}
			for i, want := range tt.recipients {
				got := rep.Recipients[i]
				if !got.LastAttempt.Equal(want.LastAttempt) {
					t.Errorf("recipient %d last attempt %v, want %v", i, got.LastAttempt, want.LastAttempt)
				}
				got.LastAttempt, want.LastAttempt = time.Time{}, time.Time{}
				if got != want {
					t.Errorf("recipient %d =\n  %+v\nwant\n  %+v", i, got, want)
				}
			}
			if rep.OriginalMessageID != tt.originalID || rep.PostalMessageID != tt.postalID {
				t.Errorf("original IDs %q / %q, want %q / %q", rep.OriginalMessageID, rep.PostalMessageID, tt.originalID, tt.postalID)
			}
			if !bytes.Contains(rep.OriginalHeaders, []byte(tt.headersContain)) || bytes.Contains(rep.OriginalHeaders, []byte("has shipped")) {
				t.Errorf("returned headers wrong:\n%s", rep.OriginalHeaders)
			}
		})
	}
}

func TestParseRejectsNonDSN(t *testing.T) {
	tests := map[string]string{
		"plain message":            "From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
		"multipart without report": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := dsn.Parse([]byte(raw)); !errors.Is(err, dsn.ErrNotDSN) {
				t.Errorf("error = %v, want ErrNotDSN", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"postfix.eml", "exim.eml", "delayed-nested.eml", "build.golden"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: utf-8; a\\x{FFFFFFFF}\\x{}b\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, err := dsn.Parse(raw)
		if err == nil && rep == nil {
			t.Fatal("nil report without error")
		}
	})
}

// FuzzBuildParse checks the round-trip property over arbitrary field values:
// whatever Build accepts, Parse returns.
func FuzzBuildParse(f *testing.F) {
	f.Add("bob@example.org", "failed", "5.1.1", "smtp; 550 no such user", "mx.example.org", "orig@example.com")
	f.Add("jöhn@bücher.example", "delayed", "4.4.7", "", "", "")
	f.Fuzz(func(t *testing.T, addr, action, status, diag, remote, origID string) {
		p := goldenParams()
		p.OriginalHeaders = nil
		p.OriginalMessageID = origID
		p.Recipients = []dsn.Recipient{{Address: addr, Action: action, Status: status, DiagnosticCode: diag, RemoteMTA: remote}}
		msg, err := dsn.Build(p)
		if err != nil {
			return
		}
		rep, err := dsn.Parse(msg)
		if err != nil {
			t.Fatalf("Parse(Build(p)): %v\n%s", err, msg)
		}
		if len(rep.Recipients) != 1 {
			t.Fatalf("got %d recipients", len(rep.Recipients))
		}
		got := rep.Recipients[0]
		// Parse makes every field safe foreign text (untrusted.Text, an
		// address at most 512 bytes): a control Build may carry escaped in
		// utf-8-addr-xtext, such as C1's U+0080, reads back as U+FFFD.
		want := untrusted.Text(strings.TrimSpace(addr), 512)
		if got.Action != action || got.Status != status || got.Address != want {
			t.Errorf("round trip changed %+v, want address %q", got, want)
		}
	})
}
