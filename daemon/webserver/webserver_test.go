package webserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/health"
	"github.com/postalgo/postal/daemon/webserver"
)

// The web port faces the internet: it answers /health and a bare /ready,
// and gives away neither dependency errors nor metrics (server names). The
// health port keeps both.
func TestWebPortShowsNoHealthDetails(t *testing.T) {
	const secret = `connect to db.internal:5432 user "postal": password authentication failed`
	var down atomic.Bool
	down.Store(true)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_test_messages_total", Help: "x"}, []string{"server"})
	c.WithLabelValues("acme/mail").Inc()
	reg.MustRegister(c)
	m := health.New(health.Options{Gatherer: reg})
	m.Add("database", func(context.Context) error {
		if down.Load() {
			return errors.New(secret)
		}
		return nil
	})
	m.RunOnce(context.Background())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := webserver.New(webserver.Options{Listener: ln, Health: m, JWKS: []byte(`{"keys":[]}`), Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ws.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + ws.Addr().String()

	// The health port (Monitor.Handler) has the details.
	healthLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthSrv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = healthSrv.Serve(healthLn) }()
	t.Cleanup(func() { _ = healthSrv.Close() })
	healthBase := "http://" + healthLn.Addr().String()

	for _, tc := range []struct {
		name        string
		url         string
		wantCode    int
		wantBody    string // exact, when set
		mustHave    string
		mustNotHave []string
	}{
		{"web /health", base + "/health", 200, "OK\n", "", nil},
		{"web /ready says only not ready", base + "/ready", 503, "not ready\n", "", nil},
		{"web has no /metrics", base + "/metrics", 404, "", "", []string{"postal_test_messages_total", "acme/mail"}},
		{"web still serves the JWKS", base + "/.well-known/jwks.json", 200, `{"keys":[]}`, "", nil},
		{"health port /ready names the failure", healthBase + "/ready", 503, "", "password authentication failed", nil},
		{"health port /metrics", healthBase + "/metrics", 200, "", `postal_test_messages_total{server="acme/mail"} 1`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, tc.url)
			if code != tc.wantCode {
				t.Fatalf("%s = %d %q, want %d", tc.url, code, body, tc.wantCode)
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Fatalf("%s body %q, want %q", tc.url, body, tc.wantBody)
			}
			if !strings.Contains(body, tc.mustHave) {
				t.Fatalf("%s body lacks %q:\n%s", tc.url, tc.mustHave, body)
			}
			for _, s := range append(tc.mustNotHave, "db.internal", "password") {
				if strings.Contains(body, s) && strings.HasPrefix(tc.url, base) {
					t.Fatalf("%s shows %q:\n%s", tc.url, s, body)
				}
			}
		})
	}

	down.Store(false)
	m.RunOnce(context.Background())
	if code, body := get(t, base+"/ready"); code != 200 || body != "ready\n" {
		t.Fatalf("web /ready after recovery = %d %q, want 200 \"ready\\n\"", code, body)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(fmt.Errorf("read %s: %w", url, err))
	}
	return resp.StatusCode, string(b)
}
