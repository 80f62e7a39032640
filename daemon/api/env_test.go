package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/api"
	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webserver"
)

// env is a running web-server role with the API mounted, on port 0, over a
// real store (SQLite or PostgreSQL), intake and Redis queue.
type env struct {
	t      testing.TB
	s      *store.Store
	q      *queue.Queue
	fx     storetest.Fixture
	key    string // the fixture server's API key
	url    string
	reg    *prometheus.Registry
	client *http.Client
}

type envOptions struct {
	tune func(t testing.TB, o *api.Options)
}

const testKey = "ApiKeyForTests0123456789"

// each runs fn on SQLite and PostgreSQL with a fresh env.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	eachWith(t, envOptions{}, fn)
}

func eachWith(t *testing.T, o envOptions, fn func(t *testing.T, e *env)) {
	t.Helper()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		fn(t, newEnv(t, s, o))
	})
}

func newEnv(t testing.TB, s *store.Store, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rc, keys := redistest.New(t)
	q := queue.New(queue.Options{Client: rc, Keys: keys})
	fx := storetest.NewFixture(t, s, "example.com", "")
	if _, err := s.CreateCredential(ctx, fx.Server.ID, store.NewCredential{Type: store.CredentialAPI, Name: "api", Key: testKey}); err != nil {
		t.Fatal(err)
	}
	in := intake.New(intake.Options{Store: s, Queue: q})
	reg := prometheus.NewRegistry()
	opts := api.Options{Store: s, Intake: in, WebHostname: "postal.test", ReturnPathDomain: "rp.postal.test",
		Registerer: reg, CacheTTL: -1, LookupAddr: lookupAddr}
	if o.tune != nil {
		o.tune(t, &opts)
	}
	h, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := webserver.New(webserver.Options{Listener: ln, API: h})
	if err != nil {
		t.Fatal(err)
	}
	inDone, wsDone := make(chan error, 1), make(chan error, 1)
	go func() { inDone <- in.Run(ctx) }()
	go func() { wsDone <- ws.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-wsDone; err != nil {
			t.Errorf("web-server: %v", err)
		}
		<-inDone
	})
	return &env{t: t, s: s, q: q, fx: fx, key: testKey, url: "http://" + ln.Addr().String(), reg: reg,
		client: &http.Client{Timeout: 30 * time.Second}}
}

// answer is a decoded envelope; Raw keeps the bytes for order checks.
// lookupAddr is the tests' reverse DNS: 127.0.0.1 is client.test.
func lookupAddr(_ context.Context, addr string) ([]string, error) {
	if addr == "127.0.0.1" {
		return []string{"client.test."}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

type answer struct {
	HTTP   int
	Header http.Header
	Raw    []byte
	Status string          `json:"status"`
	Time   json.Number     `json:"time"`
	Flags  json.RawMessage `json:"flags"`
	Data   json.RawMessage `json:"data"`
}

// data decodes Data into a generic value with numbers kept as json.Number.
func (a answer) data(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(a.Data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("data %s: %v", a.Data, err)
	}
	return m
}

// do sends a request and decodes the envelope when the answer is one.
func (e *env) do(req *http.Request) answer {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{HTTP: resp.StatusCode, Header: resp.Header, Raw: b}
	if resp.StatusCode == 200 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			e.t.Fatalf("Content-Type %q", ct)
		}
		if err := json.Unmarshal(b, &a); err != nil {
			e.t.Fatalf("answer %s: %v", b, err)
		}
	}
	return a
}

// postJSON posts body (marshalled unless it is a string) as
// application/json with the API key, as @atech/postal and postal-php do.
func (e *env) postJSON(path string, body any, headers ...string) answer {
	e.t.Helper()
	var b []byte
	if s, ok := body.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/"+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Server-API-Key", e.key)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.do(req)
}

// postForm posts `params=<JSON>` url-encoded, as postal-ruby
// (moonrope-client) does.
func (e *env) postForm(path string, body any) answer {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	form := url.Values{"params": {string(b)}}
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/"+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Server-API-Key", e.key)
	req.Header.Set("User-Agent", "Moonrope Ruby Library/1.0")
	return e.do(req)
}

// wantError checks an error envelope's code (and message, when given).
func wantError(t *testing.T, a answer, code, message string) {
	t.Helper()
	if a.HTTP != 200 || a.Status != "error" {
		t.Fatalf("answer %d %s, want error %s", a.HTTP, a.Raw, code)
	}
	d := a.data(t)
	if d["code"] != code {
		t.Fatalf("code %v, want %s (%s)", d["code"], code, a.Raw)
	}
	if message != "" && d["message"] != message {
		t.Fatalf("message %q, want %q", d["message"], message)
	}
}

// wantParamError checks a parameter-error envelope's message.
func wantParamError(t *testing.T, a answer, message string) {
	t.Helper()
	if a.HTTP != 200 || a.Status != "parameter-error" {
		t.Fatalf("answer %d %s, want parameter-error", a.HTTP, a.Raw)
	}
	d := a.data(t)
	if message != "" && d["message"] != message {
		t.Fatalf("message %q, want %q", d["message"], message)
	}
	if _, ok := d["code"]; ok {
		t.Fatalf("parameter-error with a code: %s", a.Raw)
	}
}

// success checks a success envelope and returns its data.
func success(t *testing.T, a answer) map[string]any {
	t.Helper()
	if a.HTTP != 200 || a.Status != "success" {
		t.Fatalf("answer %d %s, want success", a.HTTP, a.Raw)
	}
	if string(a.Flags) != "{}" {
		t.Fatalf("flags %s, want {}", a.Flags)
	}
	return a.data(t)
}
