package webhook_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/webhook"
)

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

func client(t *testing.T, timeout time.Duration) *webhook.Client {
	c, err := webhook.NewClient(webhook.ClientOptions{Signer: key(t), UserAgent: "Postal/test", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func request(url string) webhook.Request {
	return webhook.Request{URL: url, Event: webhook.EventMessageSent, UUID: "7f1c", CreatedAt: time.UnixMicro(1_700_000_000_000_000),
		Payload: []byte(`{"status":"Sent"}`)}
}

func TestSendSignsTheExactBody(t *testing.T) {
	type got struct {
		header http.Header
		body   []byte
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	res := client(t, 0).Send(context.Background(), request(srv.URL+"/hook"))
	if !res.OK() || res.Status != 204 || res.Code() != 204 {
		t.Fatalf("result = %+v", res)
	}
	g := <-ch
	want, _ := webhook.Body(request(""))
	if string(g.body) != string(want) {
		t.Errorf("body = %s, want %s", g.body, want)
	}
	pub := key(t).Public()
	for _, c := range []struct {
		header string
		hash   crypto.Hash
		sum    []byte
	}{
		{webhook.HeaderSignature, crypto.SHA1, func() []byte { s := sha1.Sum(g.body); return s[:] }()},
		{webhook.HeaderSignature256, crypto.SHA256, func() []byte { s := sha256.Sum256(g.body); return s[:] }()},
	} {
		sig, err := base64.StdEncoding.DecodeString(g.header.Get(c.header))
		if err != nil {
			t.Fatalf("%s: %v", c.header, err)
		}
		if err := rsa.VerifyPKCS1v15(pub, c.hash, c.sum, sig); err != nil {
			t.Errorf("%s does not verify: %v", c.header, err)
		}
	}
	if kid := g.header.Get(webhook.HeaderSignatureKID); kid != key(t).KID() || len(kid) != 64 {
		t.Errorf("KID = %q", kid)
	}
	if g.header.Get("Content-Type") != "application/json" || g.header.Get("User-Agent") != "Postal/test" {
		t.Errorf("headers = %v", g.header)
	}
}

func TestSendClassifiesAnswers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write([]byte("bad\x00 \xff news" + strings.Repeat("é", 2000)))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	followed := make(chan struct{}, 1)
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { followed <- struct{}{} })
	release := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	tlsSrv := httptest.NewTLSServer(mux) // its certificate is not trusted
	defer tlsSrv.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()

	c := client(t, 0)                        // Postal's 5 s
	quick := client(t, 300*time.Millisecond) // for the receiver that hangs
	tests := []struct {
		name    string
		url     string
		outcome webhook.Outcome
		code    int
	}{
		{"500 is a failure", srv.URL + "/fail", webhook.OutcomeHTTPError, 500},
		{"a redirect is not followed", srv.URL + "/redirect", webhook.OutcomeRedirect, 302},
		{"no answer in time", srv.URL + "/hang", webhook.OutcomeTimeout, -1},
		{"refused connection", closedURL, webhook.OutcomeConnect, -2},
		{"untrusted certificate", tlsSrv.URL + "/ok", webhook.OutcomeTLS, -3},
		{"not http", "ftp://example.com/", webhook.OutcomeInvalid, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := c
			if tt.outcome == webhook.OutcomeTimeout {
				cl = quick
			}
			res := cl.Send(context.Background(), request(tt.url))
			if res.Outcome != tt.outcome || res.Code() != tt.code || res.OK() {
				t.Fatalf("result = %+v, want %s / %d", res, tt.outcome, tt.code)
			}
			if !utf8.ValidString(res.Excerpt) || strings.ContainsRune(res.Excerpt, 0) || len(res.Excerpt) > webhook.ExcerptMax {
				t.Errorf("excerpt not sanitised: %q", res.Excerpt)
			}
		})
	}
	select {
	case <-followed:
		t.Error("redirect was followed")
	default:
	}
	res := c.Send(context.Background(), request(srv.URL+"/fail"))
	// NUL shows as U+FFFD, a stray byte is read as ISO-8859-1 (package untrusted).
	if !strings.HasPrefix(res.Excerpt, "bad\uFFFD ÿ newsé") {
		t.Errorf("excerpt = %q", res.Excerpt[:20])
	}
}

func TestRetrySchedule(t *testing.T) {
	var got []time.Duration
	for n := 1; ; n++ {
		d, ok := webhook.RetryDelay(n)
		if !ok {
			if n != webhook.MaxAttempts {
				t.Errorf("gave up after attempt %d, want %d", n, webhook.MaxAttempts)
			}
			break
		}
		got = append(got, d)
	}
	want := []time.Duration{2 * time.Minute, 3 * time.Minute, 6 * time.Minute, 10 * time.Minute, 15 * time.Minute}
	if len(got) != len(want) {
		t.Fatalf("delays = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delay after attempt %d = %v, want %v", i+1, got[i], want[i])
		}
	}
}

func TestDestination(t *testing.T) {
	for in, want := range map[string]string{
		"https://Hooks.Example.com/x?y": "https://hooks.example.com:443",
		"http://example.com:8080/":      "http://example.com:8080",
		"http://user:pw@[::1]/p":        "http://[::1]:80",
		"http://example.com/a#frag":     "http://example.com:80",
	} {
		if got := webhook.Destination(in); got != want {
			t.Errorf("Destination(%q) = %q, want %q", in, got, want)
		}
	}
}

// failingSigner is a crypto.Signer that always fails.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, io.ErrUnexpectedEOF
}

func TestCryptoSignerSignsLikeTheKeyAndFallsBack(t *testing.T) {
	k := key(t)
	body := []byte(`{"event":"MessageSent"}`)
	s := webhook.NewCryptoSigner(k.Private(), k.KID(), k)
	if s.SignSHA1(body) != k.SignSHA1(body) || s.SignSHA256(body) != k.SignSHA256(body) || s.KID() != k.KID() {
		t.Error("crypto.Signer path differs from the key's signatures")
	}
	f := webhook.NewCryptoSigner(failingSigner{}, k.KID(), k)
	if f.SignSHA1(body) != k.SignSHA1(body) || f.SignSHA256(body) != k.SignSHA256(body) {
		t.Error("fallback not used when the signer fails")
	}
}

// gateSigner signs with key but first counts itself in and waits for a
// token on release, so a test holds signatures open.
type gateSigner struct {
	webhook.Signer
	release chan struct{}
	mu      sync.Mutex
	in, max int
	calls   int
}

func (g *gateSigner) SignSHA1(body []byte) string {
	g.mu.Lock()
	g.in++
	g.calls++
	g.max = max(g.max, g.in)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.in--
	g.mu.Unlock()
	return g.Signer.SignSHA1(body)
}

func (g *gateSigner) state() (in, max, calls int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.in, g.max, g.calls
}

func TestSendBoundsConcurrentSigning(t *testing.T) {
	var hits sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	g := &gateSigner{Signer: key(t), release: make(chan struct{})}
	c, err := webhook.NewClient(webhook.ClientOptions{Signer: g, MaxSigning: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 6
	results := make(chan webhook.Result, n)
	for range n {
		hits.Add(1)
		go func() {
			defer hits.Done()
			results <- c.Send(context.Background(), request(srv.URL+"/hook"))
		}()
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			<-tick.C
		}
	}
	poll("both signing slots taken", func() bool { in, _, _ := g.state(); return in == 2 })

	// Every slot is held: an attempt whose context is over sends nothing
	// and never reaches the signer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	late := make(chan webhook.Result, 1)
	go func() { late <- c.Send(ctx, request(srv.URL+"/hook")) }()
	var res webhook.Result
	poll("the attempt with its context over", func() bool {
		select {
		case res = <-late:
			return true
		default:
		}
		if _, _, calls := g.state(); calls > 2 {
			t.Fatalf("signer called %d times with 2 slots held, want 2", calls)
		}
		return false
	})
	if res.Outcome != webhook.OutcomeTimeout || res.Status != 0 {
		t.Fatalf("send with slots full and context over = %+v, want a timeout", res)
	}
	for range n {
		g.release <- struct{}{}
	}
	hits.Wait()
	close(results)
	for res := range results {
		if !res.OK() {
			t.Errorf("result = %+v", res)
		}
	}
	if _, most, calls := g.state(); most != 2 || calls != n {
		t.Errorf("signer: at most %d at once over %d calls, want 2 over %d", most, calls, n)
	}
}

// clockSigner signs with key and moves a fake clock on by step per body,
// as a wait for the CPU would.
type clockSigner struct {
	webhook.Signer
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *clockSigner) SignSHA256(body []byte) string {
	c.mu.Lock()
	c.now = c.now.Add(c.step)
	c.mu.Unlock()
	return c.Signer.SignSHA256(body)
}

func (c *clockSigner) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func TestSendDurationLeavesOutSigning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	cs := &clockSigner{Signer: key(t), now: time.Unix(1_700_000_000, 0), step: time.Minute}
	c, err := webhook.NewClient(webhook.ClientOptions{Signer: cs, Now: cs.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := c.Send(context.Background(), request(srv.URL+"/hook"))
	if !res.OK() {
		t.Fatalf("result = %+v", res)
	}
	// A minute spent signing must not count: the receiver is not slow.
	if res.Duration != 0 {
		t.Errorf("duration = %s, want 0 (signing left out)", res.Duration)
	}
}

// spanSigner records when each body's signing started and ended and how
// many were signed at once; each signature takes at least cost.
type spanSigner struct {
	webhook.Signer
	cost    time.Duration
	mu      sync.Mutex
	in, max int
	spans   [][2]time.Time
	// both, when not nil, holds every signer until two sign at once.
	both chan struct{}
}

func (s *spanSigner) SignSHA1(body []byte) string {
	start := time.Now()
	s.mu.Lock()
	s.in++
	s.max = max(s.max, s.in)
	if s.in == 2 && s.both != nil {
		close(s.both)
	}
	both := s.both
	s.mu.Unlock()
	if both != nil {
		select {
		case <-both:
		case <-time.After(10 * time.Second):
		}
	}
	time.Sleep(s.cost)
	sig := s.Signer.SignSHA1(body)
	s.mu.Lock()
	s.spans = append(s.spans, [2]time.Time{start})
	s.mu.Unlock()
	return sig
}

func (s *spanSigner) SignSHA256(body []byte) string {
	sig := s.Signer.SignSHA256(body)
	s.mu.Lock()
	s.in--
	s.spans[len(s.spans)-1][1] = time.Now()
	s.mu.Unlock()
	return sig
}

// While mail is busy, signing is paced: one body at a time, each followed
// by a pause of (1-share)/share times its signing time, and every attempt
// still goes out (the floor); once mail is idle, bodies are signed
// concurrently again.
func TestSendYieldsToMailWhileBusy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	var busy atomic.Bool
	busy.Store(true)
	sg := &spanSigner{Signer: key(t), cost: 5 * time.Millisecond}
	c, err := webhook.NewClient(webhook.ClientOptions{Signer: sg, MaxSigning: 4, Busy: busy.Load, FloorShare: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sendAll := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		results := make(chan webhook.Result, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- c.Send(context.Background(), request(srv.URL+"/hook"))
			}()
		}
		wg.Wait()
		close(results)
		for res := range results {
			if !res.OK() {
				t.Fatalf("result = %+v", res)
			}
		}
	}
	sendAll(4)
	if sg.max != 1 || len(sg.spans) != 4 {
		t.Fatalf("while busy: %d signed at most at once over %d bodies, want 1 over 4", sg.max, len(sg.spans))
	}
	for i := 1; i < len(sg.spans); i++ {
		prev, next := sg.spans[i-1], sg.spans[i]
		took := prev[1].Sub(prev[0])
		if gap := next[0].Sub(prev[1]); gap < 3*took {
			t.Errorf("body %d signed %s after body %d, which took %s: want a pause of at least %s", i, gap, i-1, took, 3*took)
		}
	}

	busy.Store(false)
	sg.mu.Lock()
	sg.max, sg.spans, sg.both = 0, nil, make(chan struct{})
	sg.mu.Unlock()
	sendAll(4)
	if sg.max < 2 {
		t.Errorf("mail idle: at most %d body signed at once, want concurrent signing again", sg.max)
	}
}
