// Package health serves /health (the process is alive), /ready (every
// registered dependency check passes, with each check's result) and /metrics
// (Prometheus) for a postald process on its health port, and /health with a
// bare /ready status, no details, for a public port (RegisterPublic). Checks run in the background at a fixed interval and their last
// results are cached, so Ready is cheap enough to consult per SMTP
// transaction.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable; nil means healthy.
type Check func(ctx context.Context) error

// ErrNotChecked is reported by Ready before the first round of checks ran.
var ErrNotChecked = errors.New("not checked yet")

// Options configures a Monitor.
type Options struct {
	// Interval between rounds of checks (default 1s).
	Interval time.Duration
	// Timeout bounds one check (default 2s).
	Timeout time.Duration
	Log     *slog.Logger
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
}

type named struct {
	name  string
	check Check
}

// Monitor runs checks and serves the health endpoints. Add checks before Run.
type Monitor struct {
	o      Options
	checks []named

	mu      sync.RWMutex
	results map[string]error
	checked time.Time
}

// New returns a Monitor with no checks.
func New(o Options) *Monitor {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	return &Monitor{o: o, results: map[string]error{}}
}

// Add registers a named check. It must be called before Run. Checks are
// kept in name order, the order Ready reports failures in.
func (m *Monitor) Add(name string, c Check) {
	i := sort.Search(len(m.checks), func(i int) bool { return m.checks[i].name >= name })
	m.checks = slices.Insert(m.checks, i, named{name, c})
	m.results[name] = ErrNotChecked
}

// RunOnce runs every check now and stores the results.
func (m *Monitor) RunOnce(ctx context.Context) {
	res := make(map[string]error, len(m.checks))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range m.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
			defer cancel()
			err := c.check(cctx)
			mu.Lock()
			res[c.name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	m.mu.Lock()
	for name, err := range res {
		prev := m.results[name]
		if (prev == nil) != (err == nil) {
			if err != nil {
				m.o.Log.Warn("dependency unhealthy", "check", name, "err", err)
			} else if !errors.Is(prev, ErrNotChecked) {
				m.o.Log.Info("dependency healthy again", "check", name)
			}
		}
		m.results[name] = err
	}
	m.checked = time.Now()
	m.mu.Unlock()
}

// Run checks every Interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	for {
		m.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Ready returns nil when every check passed in the last round, else an
// error naming the first failing check (by name order). It is called per
// SMTP transaction, so it only reads the cached results.
func (m *Monitor) Ready() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.checks {
		if err := m.results[c.name]; err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

// ReadyOf is Ready restricted to the named checks: nil when each of them
// passed in the last round (a name never added counts as passing), else an
// error naming the first failing one in name order. Roles whose work does not
// need every dependency use it, e.g. the smtp-server accepts mail while SQL
// is up even when Redis is down.
func (m *Monitor) ReadyOf(names ...string) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.checks {
		if !slices.Contains(names, c.name) {
			continue
		}
		if err := m.results[c.name]; err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

// Status is the /ready response body.
type Status struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func (m *Monitor) status() Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := Status{Ready: true, Checks: map[string]string{}}
	for n, err := range m.results {
		if err != nil {
			st.Ready = false
			st.Checks[n] = err.Error()
		} else {
			st.Checks[n] = "ok"
		}
	}
	return st
}

// Register adds /health, /ready and /metrics to mux.
func (m *Monitor) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		st := m.status()
		w.Header().Set("Content-Type", "application/json")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.o.Gatherer, promhttp.HandlerOpts{}))
}

// RegisterPublic adds /health and a bare /ready to mux, for a port that
// faces the internet (the web server's): /ready answers 200 "ready" or 503
// "not ready" and nothing else, no check names or error text (which can
// name hosts, users and database errors), and there is no /metrics. The
// details stay on the health port (Register), bound to loopback by default.
func (m *Monitor) RegisterPublic(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if m.Ready() != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
}

// Handler returns a mux serving the three endpoints.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	m.Register(mux)
	return mux
}
