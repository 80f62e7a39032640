package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/health"
)

func TestReadyFollowsChecks(t *testing.T) {
	var redisDown, dbDown atomic.Bool
	m := health.New(health.Options{})
	// Added out of order: failures are still reported in name order.
	m.Add("redis", func(context.Context) error {
		if redisDown.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	m.Add("database", func(context.Context) error {
		if dbDown.Load() {
			return errors.New("disk full")
		}
		return nil
	})
	if err := m.Ready(); !errors.Is(err, health.ErrNotChecked) {
		t.Fatalf("Ready before any round = %v, want ErrNotChecked", err)
	}
	tests := []struct {
		name      string
		redis, db bool
		want      string
		// dbOnly is ReadyOf("database"), what the smtp-server accepts by.
		dbOnly string
	}{
		{"all up", false, false, "", ""},
		{"redis down", true, false, "redis: connection refused", ""},
		{"both down: first by name", true, true, "database: disk full", "database: disk full"},
		{"database down", false, true, "database: disk full", "database: disk full"},
		{"recovered", false, false, "", ""},
	}
	for _, tt := range tests {
		redisDown.Store(tt.redis)
		dbDown.Store(tt.db)
		m.RunOnce(context.Background())
		err := m.Ready()
		if (tt.want == "") != (err == nil) || (err != nil && err.Error() != tt.want) {
			t.Fatalf("%s: Ready = %v, want %q", tt.name, err, tt.want)
		}
		err = m.ReadyOf("database", "never-added")
		if (tt.dbOnly == "") != (err == nil) || (err != nil && err.Error() != tt.dbOnly) {
			t.Fatalf("%s: ReadyOf(database) = %v, want %q", tt.name, err, tt.dbOnly)
		}
	}
}

func TestEndpoints(t *testing.T) {
	var down atomic.Bool
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "postal_test_total", Help: "x"}))
	m := health.New(health.Options{Gatherer: reg})
	m.Add("redis", func(context.Context) error {
		if down.Load() {
			return errors.New("refused")
		}
		return nil
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	down.Store(true)
	m.RunOnce(context.Background())
	if code, body := get("/health"); code != 200 || body != "OK\n" {
		t.Fatalf("/health = %d %q", code, body)
	}
	code, body := get("/ready")
	var st health.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 503 || st.Ready || st.Checks["redis"] != "refused" {
		t.Fatalf("/ready with redis down = %d %q (%v)", code, body, err)
	}
	down.Store(false)
	m.RunOnce(context.Background())
	if code, body := get("/ready"); code != 200 || !strings.Contains(body, `"redis":"ok"`) {
		t.Fatalf("/ready after recovery = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "postal_test_total 0") {
		t.Fatalf("/metrics = %d, missing the registered counter:\n%s", code, body)
	}
}
