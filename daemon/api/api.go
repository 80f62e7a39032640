// Package api serves Postal's HTTP API v1 (the "legacy API") as its
// official clients use it: /api/v1/send/message, /api/v1/send/raw,
// /api/v1/messages/message and /api/v1/messages/deliveries, for GET, POST,
// PUT and PATCH, authenticated by the X-Server-API-Key header.
//
// Contract: every handled outcome is HTTP 200 with the envelope
// {"status", "time", "flags": {}, "data"}; status is "success", "error"
// (data carries a code) or "parameter-error" (data carries a message).
// Postal's error codes, texts, order of checks and JSON types are kept; the
// differences (proper parameter-errors where Postal answers HTTP 500 or
// 400, caps on sizes and counts, Idempotency-Key, a per-key rate limit)
// are listed in docs/api.md. A send answers success only after its
// messages are committed in SQL (through daemon/intake, the same group
// commit as SMTP's 250); an error answer stored nothing. Any other path
// under /api/v1/ is a plain 404.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/forwarded"
	"github.com/postalgo/postal/daemon/store"
)

// Store is what the API needs of the database.
type Store interface {
	APICredential(ctx context.Context, key string) (*store.APIAuth, error)
	Domains(ctx context.Context, serverID int64) ([]*store.Domain, error)
	TouchCredential(ctx context.Context, id int64) error
	ServerMessage(ctx context.Context, serverID, id int64) (*store.Message, *store.Inspection, error)
	Deliveries(ctx context.Context, messageID int64) ([]*store.Delivery, error)
	RawMessage(ctx context.Context, id int64) ([]byte, error)
	MessagesOfRaw(ctx context.Context, rawID int64) ([]*store.Message, error)
	ReserveIdempotencyKey(ctx context.Context, serverID int64, key, endpoint, requestHash string) (*store.Idempotency, bool, error)
	CompleteIdempotencyKey(ctx context.Context, id int64) error
	ReleaseIdempotencyKey(ctx context.Context, id int64) error
	TrackingOf(ctx context.Context, id int64) (*store.MessageTracking, error)
}

// Submitter makes a submission durable (daemon/intake).
type Submitter interface {
	Submit(ctx context.Context, sub store.Submission) ([]store.Accepted, error)
}

// Limiter counts requests per API credential (daemon/ratelimit.Window).
type Limiter interface {
	Exceeded(ctx context.Context, subject string) (bool, error)
	Record(ctx context.Context, subject string) error
}

// Options configures the API.
type Options struct {
	Store  Store
	Intake Submitter
	// Limiter, when set, refuses a credential's requests past its limit
	// with RateLimitExceeded; RetryAfter is sent in Retry-After.
	Limiter    Limiter
	RetryAfter time.Duration
	// WebHostname names this host in the Received field (postal.web_hostname).
	WebHostname string
	// ReturnPathDomain is the Message-ID domain (dns.return_path_domain).
	ReturnPathDomain string
	// TrustedProxies may set X-Forwarded-For (postal.trusted_proxies).
	TrustedProxies []netip.Prefix
	// LookupAddr names the client in the Received field by reverse DNS,
	// as Postal does (default net.DefaultResolver.LookupAddr), within
	// DNSTimeout (default 5s). Answers, missing records and failures are
	// cached per address (failures name the client by its address).
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	DNSTimeout time.Duration
	// MaxBodyBytes caps a request body (default 32 MiB).
	MaxBodyBytes int64
	// MaxJSONDepth caps JSON nesting (default 32).
	MaxJSONDepth int
	// CacheTTL is how long credentials and domains are cached (0: 5s;
	// negative: no caching): a revoked key or a suspension takes effect
	// within it.
	CacheTTL time.Duration
	Now      func() time.Time
	Log      *slog.Logger
	// Registerer receives the API's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Handler serves /api/v1/. Create it with New.
type Handler struct {
	o       Options
	cache   *cache
	touchMu sync.Mutex
	touched map[int64]time.Time

	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// Endpoint names (the metric label, and the Idempotency-Key scope).
const (
	epSendMessage = "send/message"
	epSendRaw     = "send/raw"
	epMessage     = "messages/message"
	epDeliveries  = "messages/deliveries"
)

// New checks o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Store == nil || o.Intake == nil {
		return nil, errors.New("api: Store and Intake are required")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.MaxJSONDepth <= 0 {
		o.MaxJSONDepth = 32
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.LookupAddr == nil {
		o.LookupAddr = net.DefaultResolver.LookupAddr
	}
	if o.DNSTimeout <= 0 {
		o.DNSTimeout = 5 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		o:       o,
		cache:   newCache(o.CacheTTL, o.Now),
		touched: map[int64]time.Time{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_api_requests_total",
			Help: "HTTP API v1 requests by endpoint and answer (success, error code, parameter-error, or http_<status>)."},
			[]string{"endpoint", "status"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postal_api_request_seconds",
			Help: "Time to answer an HTTP API v1 request.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)},
			[]string{"endpoint"}),
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("api: metrics: %w", err)
		}
		if err := o.Registerer.Register(h.seconds); err != nil {
			return nil, fmt.Errorf("api: metrics: %w", err)
		}
	}
	return h, nil
}

// Register mounts the API on mux under /api/v1/.
func (h *Handler) Register(mux *http.ServeMux) { mux.Handle("/api/v1/", h) }

// ServeHTTP answers one API request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ep := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	switch ep {
	case epSendMessage, epSendRaw, epMessage, epDeliveries:
	default:
		h.requests.WithLabelValues("other", "http_404").Inc()
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		h.requests.WithLabelValues(ep, "http_404").Inc()
		http.NotFound(w, r)
		return
	}
	data, err := h.serve(r, ep)
	label := statusSuccess
	env := envelope{Status: statusSuccess, Data: data}
	if err != nil {
		var (
			ae *apiError
			pe *paramError
			tl *tooLarge
		)
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &pe):
			ae = paramErr(pe.message)
		case errors.As(err, &tl):
			ae = paramErr(fmt.Sprintf("The request body is larger than %d bytes", tl.limit))
		default:
			h.o.Log.Error("api request failed", "endpoint", ep, "err", err)
			ae = errInternal
		}
		if ae == errRateLimited {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.o.RetryAfter.Seconds()))))
		}
		env.Status, env.Data = ae.status, ae.data()
		label = ae.status
		if ae.status == statusError {
			label = ae.code
		}
	}
	env.Time = float(math.Round(time.Since(start).Seconds()*1000) / 1000)
	body, err := marshal(env)
	if err != nil {
		h.o.Log.Error("api answer not encodable", "endpoint", ep, "err", err)
		h.requests.WithLabelValues(ep, "http_500").Inc()
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
	h.requests.WithLabelValues(ep, label).Inc()
	h.seconds.WithLabelValues(ep).Observe(time.Since(start).Seconds())
}

// serve authenticates, reads the parameters and runs the endpoint.
func (h *Handler) serve(r *http.Request, ep string) (any, error) {
	ctx := r.Context()
	auth, err := h.authenticate(ctx, r.Header.Get("X-Server-API-Key"))
	if err != nil {
		return nil, err
	}
	if err := h.limit(ctx, auth); err != nil {
		return nil, err
	}
	rq := &request{h: h, r: r, ep: ep, auth: auth}
	if ep == epSendMessage || ep == epSendRaw {
		return rq.idempotent(func(idemID int64) (any, error) {
			p, err := readParams(r, h.o.MaxBodyBytes, h.o.MaxJSONDepth)
			if err != nil {
				return nil, err
			}
			rq.p, rq.idemID = p, idemID
			if ep == epSendMessage {
				return rq.sendMessage()
			}
			return rq.sendRaw()
		})
	}
	p, err := readParams(r, h.o.MaxBodyBytes, h.o.MaxJSONDepth)
	if err != nil {
		return nil, err
	}
	rq.p = p
	if ep == epMessage {
		return rq.message()
	}
	return rq.deliveries()
}

// request is one authenticated API request.
type request struct {
	h    *Handler
	r    *http.Request
	ep   string
	auth *store.APIAuth
	p    params
	// idemID is the request's Idempotency-Key reservation (0: none).
	idemID int64
}

// maxKeyLength caps an API key; Postal's are 24 characters.
const maxKeyLength = 256

// authenticate applies Postal's checks in order: a key is given, it is an
// API credential's key, its server and organisation are not suspended.
func (h *Handler) authenticate(ctx context.Context, key string) (*store.APIAuth, error) {
	if strings.TrimSpace(key) == "" {
		return nil, errAccessDenied
	}
	var auth *store.APIAuth
	var found bool
	if len(key) <= maxKeyLength {
		var err error
		auth, found, err = h.cache.credential(ctx, h.o.Store, key)
		if err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, &apiError{status: statusError, code: "InvalidServerAPIKey",
			message: "The API token provided in X-Server-API-Key was not valid.",
			attrs:   object{{"token", cleanText(key, maxKeyLength)}}}
	}
	if auth.Server.Suspended() || auth.OrganizationSuspended {
		return nil, errSuspended
	}
	h.touch(auth.Credential.ID)
	return auth, nil
}

// touchEvery is how often a credential's last_used_at is written.
const touchEvery = time.Minute

// touch records a credential's use at most once a minute, in the
// background (it never delays or fails a request).
func (h *Handler) touch(id int64) {
	now := h.o.Now()
	h.touchMu.Lock()
	last, ok := h.touched[id]
	if ok && now.Sub(last) < touchEvery {
		h.touchMu.Unlock()
		return
	}
	if len(h.touched) > 10000 {
		clear(h.touched)
	}
	h.touched[id] = now
	h.touchMu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.o.Store.TouchCredential(ctx, id); err != nil {
			h.o.Log.Warn("recording credential use failed", "credential", id, "err", err)
		}
	}()
}

// limitTimeout bounds the rate limit's Redis calls for one request, so a
// Redis that hangs (rather than refusing connections) delays a request by
// at most this much before it is let through.
const limitTimeout = 500 * time.Millisecond

// limit applies the per-credential rate limit. When Redis fails or does
// not answer within limitTimeout the request is let through (and logged):
// the limit protects, it must not take the API down with Redis.
func (h *Handler) limit(ctx context.Context, auth *store.APIAuth) error {
	if h.o.Limiter == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, limitTimeout)
	defer cancel()
	subject := auth.Credential.UUID
	over, err := h.o.Limiter.Exceeded(ctx, subject)
	if err != nil {
		h.o.Log.Warn("rate limit unavailable; request allowed", "credential", auth.Credential.ID, "err", err)
		return nil
	}
	if over {
		return errRateLimited
	}
	if err := h.o.Limiter.Record(ctx, subject); err != nil {
		h.o.Log.Warn("rate limit unavailable; request allowed", "credential", auth.Credential.ID, "err", err)
	}
	return nil
}

// clientIP is the request's client behind postal.trusted_proxies.
func (h *Handler) clientIP(r *http.Request) netip.Addr {
	return forwarded.ClientIP(r, h.o.TrustedProxies)
}
