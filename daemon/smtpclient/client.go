package smtpclient

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultHeloHostname       = "localhost"
	DefaultOpenTimeout        = 30 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	DefaultMaxConnsPerHost    = 10
	DefaultMaxMessagesPerConn = 100
	DefaultIdleTimeout        = 10 * time.Second
)

// Options configure a Client. Zero fields take the Default values above.
type Options struct {
	// HeloHostname is the name sent with EHLO/HELO.
	HeloHostname string
	// OpenTimeout bounds dial, greeting, EHLO and STARTTLS together.
	OpenTimeout time.Duration
	// ReadTimeout bounds each reply read and each write of commands or body.
	ReadTimeout time.Duration
	// TLSConfig is the base TLS configuration, cloned for every connection
	// with ServerName set from the Destination when empty. Verification
	// policy (e.g. InsecureSkipVerify for opportunistic TLS) is the caller's
	// choice. Nil means the Go defaults with TLS 1.2 as the minimum.
	TLSConfig *tls.Config
	// MaxConnsPerHost caps the open connections per Destination.Key.
	MaxConnsPerHost int
	// MaxMessagesPerConn is how many transactions a connection carries
	// before it is closed with QUIT.
	MaxMessagesPerConn int
	// IdleTimeout is how long an unused connection stays pooled.
	IdleTimeout time.Duration
	// Registerer, when non-nil, receives the client's metrics.
	Registerer prometheus.Registerer
	// Log receives connection-level events at debug level; nil discards.
	Log *slog.Logger
	// Dialer replaces the default TCP dialer (which binds
	// Destination.LocalAddr); tests use it.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now replaces time.Now for idle accounting and durations.
	Now func() time.Time
}

// Client sends messages over pooled SMTP connections. It is safe for
// concurrent use. Close it to release its connections and its janitor.
type Client struct {
	o   Options
	log *slog.Logger
	m   *metrics

	mu     sync.Mutex
	pools  map[string]*hostPool
	closed bool

	stopJanitor context.CancelFunc
	janitorDone chan struct{}
}

// New returns a Client with o's zero fields defaulted and starts the
// goroutine that closes idle connections; Close stops it. Metrics are
// registered on o.Registerer when given; a registration failure is logged and
// the client works without exported metrics.
func New(o Options) *Client {
	if o.HeloHostname == "" {
		o.HeloHostname = DefaultHeloHostname
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if o.MaxMessagesPerConn <= 0 {
		o.MaxMessagesPerConn = DefaultMaxMessagesPerConn
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "smtpclient")
	c := &Client{
		o:           o,
		log:         log,
		m:           newMetrics(o.Registerer, log),
		pools:       make(map[string]*hostPool),
		janitorDone: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopJanitor = cancel
	go c.janitor(ctx)
	return c
}

// Close stops the janitor, says QUIT to every idle connection and closes it.
// Connections busy at that moment are closed when their Send finishes; Sends
// begun after Close fail with an Error wrapping ErrClosed. Close returns the
// errors met while closing sockets, and nil when called again.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var idle []*conn
	for _, hp := range c.pools {
		idle = append(idle, hp.idle...)
		hp.open -= len(hp.idle)
		hp.idle = nil
	}
	c.mu.Unlock()
	c.stopJanitor()
	<-c.janitorDone
	return quitAll(idle)
}

// quitAll QUITs and closes conns in parallel and joins their close errors.
func quitAll(conns []*conn) error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, cn := range conns {
		wg.Go(func() { errs[i] = cn.quit() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// janitor closes connections idle for longer than IdleTimeout until ctx ends.
func (c *Client) janitor(ctx context.Context) {
	defer close(c.janitorDone)
	t := time.NewTicker(max(c.o.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.reapIdle(c.o.Now()); err != nil {
				c.log.Debug("closing idle connections", "err", err)
			}
		}
	}
}

// reapIdle closes every pooled connection unused since now-IdleTimeout and
// forgets destinations with no connections and no callers. It returns the
// joined close errors.
func (c *Client) reapIdle(now time.Time) error {
	cutoff := now.Add(-c.o.IdleTimeout)
	var stale []*conn
	c.mu.Lock()
	for key, hp := range c.pools {
		kept := hp.idle[:0]
		for _, cn := range hp.idle {
			if cn.lastUsed.After(cutoff) {
				kept = append(kept, cn)
				continue
			}
			stale = append(stale, cn)
			hp.open--
		}
		clear(hp.idle[len(kept):])
		hp.idle = kept
		c.forgetLocked(key, hp)
	}
	c.mu.Unlock()
	return quitAll(stale)
}

// HostStats counts one destination's connections.
type HostStats struct {
	// Open is every connection, busy, idle or being opened.
	Open int
	// Idle connections wait in the pool.
	Idle int
	// Busy connections carry a Send (or are being opened for one).
	Busy int
}

// PoolStats is a snapshot of the pool.
type PoolStats struct {
	// Hosts maps Destination.Key to its counts; destinations with nothing
	// open and no caller waiting are absent.
	Hosts map[string]HostStats
	// Open, Idle and Busy total the per-host counts.
	Open, Idle, Busy int
}

// Stats returns a consistent snapshot of the pool's connection counts.
func (c *Client) Stats() PoolStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := PoolStats{Hosts: make(map[string]HostStats, len(c.pools))}
	for key, hp := range c.pools {
		h := HostStats{Open: hp.open, Idle: len(hp.idle), Busy: hp.busy}
		s.Hosts[key] = h
		s.Open += h.Open
		s.Idle += h.Idle
		s.Busy += h.Busy
	}
	return s
}

// metrics are the client's Prometheus collectors, made per Client.
type metrics struct {
	opened   prometheus.Counter
	reused   prometheus.Counter
	sent     prometheus.Counter
	softFail prometheus.Counter
	hardFail prometheus.Counter
	busy     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	opened := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "postal", Subsystem: "smtpclient", Name: "connections_opened_total",
		Help: "SMTP connections opened (dial through EHLO/STARTTLS succeeded).",
	})
	reused := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "postal", Subsystem: "smtpclient", Name: "connections_reused_total",
		Help: "Sends that ran over a pooled connection.",
	})
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "postal", Subsystem: "smtpclient", Name: "messages_total",
		Help: "Send calls by outcome: sent, soft_fail or hard_fail.",
	}, []string{"outcome"})
	busy := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "postal", Subsystem: "smtpclient", Name: "busy_connections",
		Help: "Connections carrying a Send, per destination key.",
	}, []string{"destination"})
	if reg != nil {
		opened = register(reg, log, opened)
		reused = register(reg, log, reused)
		messages = register(reg, log, messages)
		busy = register(reg, log, busy)
	}
	return &metrics{
		opened:   opened,
		reused:   reused,
		sent:     messages.WithLabelValues("sent"),
		softFail: messages.WithLabelValues("soft_fail"),
		hardFail: messages.WithLabelValues("hard_fail"),
		busy:     busy,
	}
}

// register registers col on reg. When an identical collector is already there
// (a second Client on the same registry) it returns that one so both clients
// add to the same series; any other failure is logged and col is returned
// unregistered.
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, col C) C {
	err := reg.Register(col)
	if err == nil {
		return col
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("registering smtpclient metric", "err", err)
	return col
}
