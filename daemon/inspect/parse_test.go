package inspect_test

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/inspect"
)

const spamdReport = "SPAMD/1.1 0 EX_OK\r\nContent-length: 400\r\nSpam: True ; 1002.5 / 5.0\r\n\r\n" +
	"Spam detection software...\n\nContent analysis details:   (1002.5 points, 5.0 required)\n\n" +
	" pts rule name              description\n" +
	"---- ---------------------- --------------------------------------------------\n" +
	"-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n" +
	"1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n" +
	" 2.5 LONG_RULE              A description that goes on\n" +
	"                            over a second line\n\n"

const rspamdJSON = `{"is_skipped":false,"score":7.5,"required_score":15.0,"action":"add header",` +
	`"symbols":{"R_A":{"name":"R_A","score":2.5,"description":"rule a"},"B":{"name":"B","score":5.0},` +
	`"C":{"name":"C","score":0.0,"description":"zero"}}}`

func TestParseSpamdReply(t *testing.T) {
	r, err := inspect.ParseSpamdReply([]byte(spamdReport))
	if err != nil {
		t.Fatal(err)
	}
	want := []inspect.Check{{"GTUBE", 1000, "BODY: Generic Test for Unsolicited Bulk Email"},
		{"LONG_RULE", 2.5, "A description that goes on over a second line"},
		{"NO_RELAYS", 0, "Informational: message was not relayed via SMTP"}}
	if r.Score != 1002.5 || len(r.Checks) != len(want) {
		t.Fatalf("got %+v", r)
	}
	for i := range want {
		if r.Checks[i] != want[i] {
			t.Errorf("check %d: %+v, want %+v", i, r.Checks[i], want[i])
		}
	}
	for _, bad := range []string{"", "SPAMD/1.1 76 Bad header line\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n",
		"SPAMD/1.1 0 EX_OK\r\n\r\nno header", "SPAMD/1.1 0 EX_OK\r\nSpam: True ; x / 5\r\n\r\n",
		"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5\r\n\r\n"} {
		if _, err := inspect.ParseSpamdReply([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseSpamdReplyCaps(t *testing.T) {
	var b strings.Builder
	b.WriteString("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n\r\n---- ----\n")
	for i := range 500 {
		b.WriteString("0.1 RULE_" + strings.Repeat("X", i%100) + " " + strings.Repeat("\x00d\xff", 200) + "\n")
	}
	r, err := inspect.ParseSpamdReply([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Checks) != inspect.MaxChecks {
		t.Errorf("%d checks, want %d", len(r.Checks), inspect.MaxChecks)
	}
	for _, c := range r.Checks {
		checkClean(t, c)
	}
}

func TestParseRspamdReply(t *testing.T) {
	r, err := inspect.ParseRspamdReply([]byte(rspamdJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := []inspect.Check{{"B", 5, ""}, {"R_A", 2.5, "rule a"}, {"C", 0, "zero"}}
	if r.Score != 7.5 || len(r.Checks) != 3 {
		t.Fatalf("got %+v", r)
	}
	for i := range want {
		if r.Checks[i] != want[i] {
			t.Errorf("check %d: %+v, want %+v", i, r.Checks[i], want[i])
		}
	}
	for _, bad := range []string{"", "{}", `{"score":"x"}`, "[1]", `{"symbols":{}}`} {
		if _, err := inspect.ParseRspamdReply([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseClamdReply(t *testing.T) {
	cases := []struct {
		in      string
		threat  bool
		details string
		err     bool
	}{
		{"stream: OK\x00", false, "No threats found", false},
		{"stream: Eicar-Test-Signature FOUND\x00", true, "Eicar-Test-Signature", false},
		{"1: Win.Test.EICAR_HDB-1 FOUND\n", true, "Win.Test.EICAR_HDB-1", false},
		{"INSTREAM size limit exceeded. ERROR\x00", false, "", true},
		{"stream: lstat() failed. ERROR", false, "", true},
		{"", false, "", true},
		{"stream:  FOUND", false, "", true},
		{"garbage", false, "", true},
	}
	for _, c := range cases {
		r, err := inspect.ParseClamdReply([]byte(c.in))
		if (err != nil) != c.err || r.Threat != c.threat || r.Details != c.details {
			t.Errorf("%q: %+v, %v; want threat %v %q, error %v", c.in, r, err, c.threat, c.details, c.err)
		}
	}
}

func checkClean(t *testing.T, c inspect.Check) {
	t.Helper()
	if len(c.Code) > inspect.MaxCodeLen || len(c.Description) > inspect.MaxDescriptionLen ||
		!utf8.ValidString(c.Code) || !utf8.ValidString(c.Description) ||
		strings.ContainsAny(c.Code+c.Description, "\x00\r\n") || math.IsNaN(c.Score) || math.IsInf(c.Score, 0) {
		t.Fatalf("check not clean: %+v", c)
	}
}

func FuzzParseSpamdReply(f *testing.F) {
	f.Add([]byte(spamdReport))
	f.Add([]byte("SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.0 / 5.0\r\n\r\n----\n 1e308 X y\n\t cont\n"))
	f.Add([]byte("SPAMD/1.1 0 EX_OK\nspam: yes;1/2\n\n---- -\n-\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := inspect.ParseSpamdReply(b)
		if err != nil {
			return
		}
		if math.IsNaN(r.Score) || math.IsInf(r.Score, 0) || len(r.Checks) > inspect.MaxChecks {
			t.Fatalf("bad result %+v", r)
		}
		for _, c := range r.Checks {
			checkClean(t, c)
		}
	})
}

func FuzzParseRspamdReply(f *testing.F) {
	f.Add([]byte(rspamdJSON))
	f.Add([]byte(`{"score":1e400}`))
	f.Add([]byte(`{"score":-1,"symbols":{"\u0000":{"score":1,"description":"\ud800"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := inspect.ParseRspamdReply(b)
		if err != nil {
			return
		}
		if math.IsNaN(r.Score) || math.IsInf(r.Score, 0) || len(r.Checks) > inspect.MaxChecks {
			t.Fatalf("bad result %+v", r)
		}
		for _, c := range r.Checks {
			checkClean(t, c)
		}
	})
}

func FuzzParseClamdReply(f *testing.F) {
	for _, s := range []string{"stream: OK\x00", "stream: Eicar-Test-Signature FOUND\x00",
		"INSTREAM size limit exceeded. ERROR\x00", "1: \xff\x00 FOUND"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := inspect.ParseClamdReply(b)
		if err != nil {
			return
		}
		if (!r.Threat && r.Details != "No threats found") || (r.Threat && r.Details == "") || len(r.Details) > inspect.MaxThreatLen ||
			!utf8.ValidString(r.Details) || strings.ContainsAny(r.Details, "\x00\r\n") {
			t.Fatalf("bad result %+v from %q", r, b)
		}
	})
}
