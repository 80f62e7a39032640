package endpoint

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	keyOnce sync.Once
	testKey *signing.Key
)

func key(t testing.TB) *signing.Key {
	keyOnce.Do(func() {
		priv, err := signing.Generate(signing.MinBits)
		if err != nil {
			t.Fatal(err)
		}
		if testKey, err = signing.NewKey(priv); err != nil {
			t.Fatal(err)
		}
	})
	return testKey
}

const sample = "Received: from mx.far.test\r\n" +
	"From: =?UTF-8?Q?J=C3=BCrgen?= <j@far.test>\r\n" +
	"To: sales@example.com\r\n" +
	"Reply-To: a@far.test\r\n" +
	"Reply-To: b@far.test\r\n" +
	"Subject: Order #1\r\n" +
	"Message-ID: <abc@far.test>\r\n" +
	"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: multipart/alternative; boundary=\"b2\"\r\n" +
	"\r\n" +
	"--b2\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Thanks!\r\n" +
	"\r\n" +
	"On Thu, 3 Dec 2026, Sales wrote:\r\n" +
	"> old text\r\n" +
	"--b2\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>Thanks!</p>\r\n" +
	"--b2--\r\n" +
	"--b1\r\n" +
	"Content-Type: text/csv; name=\"order.csv\"\r\n" +
	"Content-Disposition: attachment; filename=\"order.csv\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"aWQscXR5CjEsMgo=\r\n" +
	"--b1--\r\n"

func sampleMessage() Message {
	return Message{ID: 42, RcptTo: "sales+vip@example.com", MailFrom: "j@far.test", Token: "AbCdEfGhIjKlMnOp",
		Timestamp: time.Date(2026, 12, 4, 10, 0, 1, 250000000, time.UTC), ReceivedWithSSL: true, Raw: []byte(sample)}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", name, got, want)
	}
}

func TestBodyGolden(t *testing.T) {
	cases := []struct {
		name string
		ep   HTTP
		ct   string
	}{
		{"hash.json", HTTP{Format: FormatHash, Encoding: EncodingJSON, IncludeAttachments: true}, "application/json"},
		{"hash_strip_noatt.json", HTTP{Format: FormatHash, Encoding: EncodingJSON, StripReplies: true}, "application/json"},
		{"hash.form", HTTP{Format: FormatHash, Encoding: EncodingFormData, IncludeAttachments: true}, "application/x-www-form-urlencoded"},
		{"raw.json", HTTP{Format: FormatRaw, Encoding: EncodingJSON}, "application/json"},
		{"raw.form", HTTP{Format: FormatRaw, Encoding: EncodingFormData}, "application/x-www-form-urlencoded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, ct, err := Body(c.ep, sampleMessage())
			if err != nil {
				t.Fatal(err)
			}
			if ct != c.ct {
				t.Errorf("content type %q, want %q", ct, c.ct)
			}
			golden(t, c.name, body)
		})
	}
}

func TestStripReplies(t *testing.T) {
	cases := []struct{ in, body, replies string }{
		{"Hi\n\nOn Mon, Bob wrote:\n> x\n", "Hi", "On Mon, Bob wrote:\n> x"},
		{"Hi\r\n-- \r\nBob\r\n", "Hi", "-- \nBob"},
		{"Yes\n-----Original Message-----\nFrom: a\n", "Yes", "-----Original Message-----\nFrom: a"},
		{"Ok\nSent from my phone\n", "Ok", "Sent from my phone"},
		{"No quote here\n", "No quote here", ""},
	}
	for _, c := range cases {
		body, rep := StripReplies(c.in)
		got := ""
		if rep != nil {
			got = *rep
		}
		if body != c.body || got != c.replies {
			t.Errorf("StripReplies(%q) = %q, %q; want %q, %q", c.in, body, got, c.body, c.replies)
		}
	}
}

// TestDeliverResults posts to a real HTTP receiver that checks the
// signatures, and maps each answer as Postal does.
func TestDeliverResults(t *testing.T) {
	k := key(t)
	var mu sync.Mutex
	status := 200
	var gotBody []byte
	var gotHeader http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotBody, gotHeader = b, r.Header.Clone()
		code := status
		mu.Unlock()
		w.WriteHeader(code)
		_, _ = w.Write([]byte("  answer \x00 text\n"))
	}))
	defer srv.Close()
	c, err := New(Options{Signer: k, UserAgent: "Postal/test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ep := HTTP{URL: srv.URL + "/in", Format: FormatHash, IncludeAttachments: true}
	cases := []struct {
		code int
		want Verdict
	}{{200, Sent}, {204, Sent}, {500, Retry}, {503, Retry}, {429, FailNoBounce}, {404, Fail}, {302, Fail}, {400, Fail}}
	for _, tc := range cases {
		mu.Lock()
		status = tc.code
		mu.Unlock()
		res := c.Deliver(context.Background(), ep, sampleMessage())
		if res.Verdict != tc.want || res.Code != tc.code {
			t.Errorf("status %d: verdict %v code %d, want %v", tc.code, res.Verdict, res.Code, tc.want)
		}
		if want := "Received a " + strconv.Itoa(tc.code) + " from " + ep.URL; res.Details != want {
			t.Errorf("details %q, want %q", res.Details, want)
		}
		if wantOut := "answer \ufffd text"; tc.code != 204 && res.Output != wantOut {
			t.Errorf("output %q, want %q", res.Output, wantOut)
		}
		if strings.ContainsRune(res.Output, 0) {
			t.Errorf("output keeps a NUL: %q", res.Output)
		}
		if len(res.LogID) != 8 || res.SSL {
			t.Errorf("log id %q ssl %v", res.LogID, res.SSL)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if err := signing.VerifySHA256(k.Public(), gotBody, gotHeader.Get(webhook.HeaderSignature256)); err != nil {
		t.Errorf("SHA-256 signature: %v", err)
	}
	if err := signing.VerifySHA1(k.Public(), gotBody, gotHeader.Get(webhook.HeaderSignature)); err != nil {
		t.Errorf("SHA-1 signature: %v", err)
	}
	if gotHeader.Get(webhook.HeaderSignatureKID) != k.KID() || gotHeader.Get("User-Agent") != "Postal/test" ||
		gotHeader.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", gotHeader)
	}
}

func TestDeliverNoAnswerRetries(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close() // connection refused from now on
	c, err := New(Options{Signer: key(t)})
	if err != nil {
		t.Fatal(err)
	}
	res := c.Deliver(context.Background(), HTTP{URL: u}, sampleMessage())
	if res.Verdict != Retry || res.Code != -2 {
		t.Errorf("refused: %+v", res)
	}
	res = c.Deliver(context.Background(), HTTP{URL: "ftp://x"}, sampleMessage())
	if res.Verdict != Fail {
		t.Errorf("bad URL: %+v", res)
	}
}

func TestDeliverBasicAuthRedacted(t *testing.T) {
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
	}))
	defer srv.Close()
	c, _ := New(Options{Signer: key(t)})
	u := strings.Replace(srv.URL, "http://", "http://bob:s3cret@", 1)
	res := c.Deliver(context.Background(), HTTP{URL: u}, sampleMessage())
	if user != "bob" || pass != "s3cret" {
		t.Errorf("basic auth %q %q", user, pass)
	}
	if strings.Contains(res.Details, "s3cret") {
		t.Errorf("details show the password: %q", res.Details)
	}
}

func FuzzBody(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("Subject: x\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, ep := range []HTTP{{IncludeAttachments: true, StripReplies: true}, {Encoding: EncodingFormData, IncludeAttachments: true}} {
			if _, _, err := Body(ep, Message{Raw: raw}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
