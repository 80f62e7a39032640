package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// Limits of one attempt.
const (
	// Timeout bounds a whole attempt (connect, TLS, request, response
	// excerpt), as Postal's 5-second wrapper does.
	Timeout = 5 * time.Second
	// ExcerptMax is the most bytes of a response body kept.
	ExcerptMax = 1024
	// drainMax is the most bytes read past the excerpt so the connection
	// can be reused; a longer body closes the connection instead.
	drainMax = 64 << 10
	// MaxURL caps the length of a webhook URL.
	MaxURL = 2048
	// MaxPayload caps an event payload; a bigger one is never sent.
	MaxPayload = 1 << 20
)

// Headers sent with every request.
const (
	HeaderSignature    = "X-Postal-Signature"
	HeaderSignature256 = "X-Postal-Signature-256"
	HeaderSignatureKID = "X-Postal-Signature-KID"
)

// Envelope is the JSON body a receiver gets, keys in Postal's order.
// Timestamp is when the request was enqueued (the same on every retry) and
// UUID the request's id, stable across retries for idempotency.
type Envelope struct {
	Event     string          `json:"event"`
	Timestamp float64         `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
	UUID      string          `json:"uuid"`
}

// Request is one webhook call to make.
type Request struct {
	URL   string
	Event string
	// UUID identifies the request across its attempts.
	UUID string
	// CreatedAt is when the request was enqueued.
	CreatedAt time.Time
	// Payload is the event's JSON object.
	Payload []byte
}

// Body returns the exact bytes sent for r. It fails when the payload is not
// one JSON object or exceeds MaxPayload.
func Body(r Request) ([]byte, error) {
	if len(r.Payload) > MaxPayload {
		return nil, fmt.Errorf("webhook body: payload of %d bytes exceeds %d", len(r.Payload), MaxPayload)
	}
	p := bytes.TrimSpace(r.Payload)
	if len(p) == 0 || p[0] != '{' || !json.Valid(p) {
		return nil, errors.New("webhook body: payload is not a JSON object")
	}
	b, err := json.Marshal(Envelope{Event: r.Event, Timestamp: Seconds(r.CreatedAt), Payload: p, UUID: r.UUID})
	if err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	return b, nil
}

// Signer signs bodies with the installation's signing key (signing.Key).
type Signer interface {
	// SignSHA1 and SignSHA256 return base64 RSA PKCS#1 v1.5 signatures.
	SignSHA1(body []byte) string
	SignSHA256(body []byte) string
	// KID is the JWK key id published at /.well-known/jwks.json.
	KID() string
}

// SignatureHeaders returns the three signature headers for body.
func SignatureHeaders(s Signer, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderSignature, s.SignSHA1(body))
	h.Set(HeaderSignature256, s.SignSHA256(body))
	h.Set(HeaderSignatureKID, s.KID())
	return h
}

// Outcome classifies an attempt.
type Outcome string

// The outcomes of an attempt. Only OutcomeOK is a success.
const (
	OutcomeOK        Outcome = "ok"         // a 2xx answer
	OutcomeHTTPError Outcome = "http_error" // any other answer but a redirect
	OutcomeRedirect  Outcome = "redirect"   // a 3xx answer (never followed)
	OutcomeTimeout   Outcome = "timeout"    // no complete answer within Timeout
	OutcomeDNS       Outcome = "dns"        // the host name did not resolve
	OutcomeConnect   Outcome = "connect"    // refused, reset, unreachable, other socket errors
	OutcomeTLS       Outcome = "tls"        // the certificate or handshake failed
	OutcomeInvalid   Outcome = "invalid"    // the URL or payload cannot be sent at all
)

// Outcomes lists every Outcome (metric labels are created for each).
func Outcomes() []Outcome {
	return []Outcome{OutcomeOK, OutcomeHTTPError, OutcomeRedirect, OutcomeTimeout, OutcomeDNS, OutcomeConnect, OutcomeTLS, OutcomeInvalid}
}

// Permanent reports whether retrying cannot help (the request itself is bad).
func (o Outcome) Permanent() bool { return o == OutcomeInvalid }

// Result is what one attempt did.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status, 0 when no answer arrived.
	Status   int
	Duration time.Duration
	// Excerpt is the start of the response body, or the error text when no
	// answer arrived: valid UTF-8 of at most ExcerptMax bytes (package untrusted).
	Excerpt string
}

// OK reports whether the attempt succeeded (a 2xx answer).
func (r Result) OK() bool { return r.Outcome == OutcomeOK }

// Code is the status code Postal logs: the HTTP status, or -1 for a timeout,
// -2 for socket and DNS errors, -3 for TLS errors, 0 for a request never
// made.
func (r Result) Code() int {
	switch r.Outcome {
	case OutcomeTimeout:
		return -1
	case OutcomeDNS, OutcomeConnect:
		return -2
	case OutcomeTLS:
		return -3
	}
	return r.Status
}

// ClientOptions configures a Client.
type ClientOptions struct {
	// Signer signs every body; required.
	Signer Signer
	// UserAgent is sent as User-Agent (default "Postal/dev").
	UserAgent string
	// Timeout bounds one attempt (default Timeout).
	Timeout time.Duration
	// MaxIdlePerHost is how many idle connections are kept per host (default 8).
	MaxIdlePerHost int
	// MaxSigning caps the bodies being signed at once (default half the
	// CPUs Go may use, at least 1). Two RSA signatures per request are most
	// of an attempt's CPU, and a libcrypto signature runs on its own thread
	// outside GOMAXPROCS: unbounded, every concurrent attempt would sign at
	// once and take the CPU from mail delivery in the same process.
	MaxSigning int
	// Busy reports whether the process has work that comes before
	// webhooks (mail deliveries in flight); nil means never. While it
	// reports true, signing is paced (mail first): one body at a time, and
	// after a signature that took d the next one waits
	// d*(1-FloorShare)/FloorShare, so webhook signing (most of an
	// attempt's CPU) takes at most FloorShare of one CPU's time. It never
	// stops: that share is the floor under which webhooks keep draining,
	// and once Busy reports false they go at full speed again.
	Busy func() bool
	// FloorShare is the share of one CPU's time signing keeps while Busy
	// (default DefaultFloorShare; at most 1, which disables the pacing).
	FloorShare float64
	// RootCAs verifies HTTPS receivers (nil: the system's roots).
	RootCAs *x509.CertPool
	// Now is the clock for durations (default time.Now).
	Now func() time.Time
}

// DefaultFloorShare is ClientOptions.FloorShare's default.
const DefaultFloorShare = 0.25

// Client makes webhook attempts. It is safe for concurrent use.
type Client struct {
	o    ClientOptions
	http *http.Client
	// signing holds one token per body being signed (MaxSigning).
	signing chan struct{}
	// paced holds the one token of a body signed while Busy; next is when
	// the next paced signature may start (guarded by the token).
	paced chan struct{}
	next  time.Time
}

// NewClient returns a Client; it fails without a Signer.
func NewClient(o ClientOptions) (*Client, error) {
	if o.Signer == nil {
		return nil, errors.New("webhook client: a signer is required")
	}
	if o.UserAgent == "" {
		o.UserAgent = "Postal/dev"
	}
	if o.Timeout <= 0 {
		o.Timeout = Timeout
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 8
	}
	if o.MaxSigning <= 0 {
		o.MaxSigning = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FloorShare <= 0 {
		o.FloorShare = DefaultFloorShare
	}
	o.FloorShare = min(o.FloorShare, 1)
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment, // HTTPS_PROXY etc., as Ruby's Net::HTTP
		DialContext:            (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.Timeout,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    o.MaxIdlePerHost,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	hc := &http.Client{
		Transport: tr,
		// Redirects are never followed: a 3xx is the answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{o: o, http: hc, signing: make(chan struct{}, o.MaxSigning), paced: make(chan struct{}, 1)}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// CheckURL reports why u cannot be a webhook URL: too long, not absolute
// http(s), no host, or a fragment.
func CheckURL(u string) error {
	if len(u) > MaxURL {
		return fmt.Errorf("webhook URL longer than %d bytes", MaxURL)
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("webhook URL: %w", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("webhook URL %q is not http(s)", truncate(u, 80))
	}
	if p.Host == "" || p.Hostname() == "" {
		return fmt.Errorf("webhook URL %q has no host", truncate(u, 80))
	}
	return nil
}

// Destination is the key concurrency is bounded by: scheme://host:port of
// u, lower-cased, or u itself when it does not parse.
func Destination(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return truncate(u, 256)
	}
	port := p.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(p.Scheme, "https") {
			port = "443"
		}
	}
	return strings.ToLower(p.Scheme + "://" + net.JoinHostPort(p.Hostname(), port))
}

// Send makes one attempt of r: a signed POST of Body(r). It never returns
// an error: every failure is a Result with its Outcome. The body is signed
// first, waiting for one of MaxSigning signing slots; Timeout and
// Result.Duration cover the HTTP exchange only, so a wait for the CPU is
// never taken for a slow receiver. The context bounds the attempt further
// (a worker shutting down): ended while waiting to sign, the attempt is a
// timeout that sent nothing.
func (c *Client) Send(ctx context.Context, r Request) Result {
	if err := CheckURL(r.URL); err != nil {
		return Result{Outcome: OutcomeInvalid, Excerpt: excerpt([]byte(err.Error()), ExcerptMax)}
	}
	body, err := Body(r)
	if err != nil {
		return Result{Outcome: OutcomeInvalid, Excerpt: excerpt([]byte(err.Error()), ExcerptMax)}
	}
	sig, err := c.sign(ctx, body)
	if err != nil {
		return Result{Outcome: OutcomeTimeout, Excerpt: excerpt([]byte("Not sent: "+err.Error()), ExcerptMax)}
	}
	start := c.o.Now()
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: OutcomeInvalid, Excerpt: excerpt([]byte(err.Error()), ExcerptMax)}
	}
	for k, v := range sig {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.o.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		res := Result{Outcome: classify(ctx, err), Excerpt: excerpt([]byte(failureText(ctx, err, c.o.Timeout)), ExcerptMax)}
		res.Duration = c.o.Now().Sub(start)
		return res
	}
	defer resp.Body.Close()
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, ExcerptMax))
	if readErr == nil {
		// Let a short remainder be read so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainMax))
	}
	res := Result{Status: resp.StatusCode, Excerpt: excerpt(head, ExcerptMax), Duration: c.o.Now().Sub(start)}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.Outcome = OutcomeOK
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Outcome = OutcomeRedirect
	default:
		res.Outcome = OutcomeHTTPError
	}
	// A body cut short by the deadline does not change the outcome: the
	// status line is the receiver's answer.
	return res
}

// sign returns the signature headers of body, made in one of the
// MaxSigning slots, and paced while Busy (see ClientOptions.Busy); it fails
// only when ctx ends while waiting for a slot or for its pace.
func (c *Client) sign(ctx context.Context, body []byte) (http.Header, error) {
	select {
	case c.signing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to sign: %w", ctx.Err())
	}
	defer func() { <-c.signing }()
	if c.o.Busy == nil || c.o.FloorShare >= 1 || !c.o.Busy() {
		return SignatureHeaders(c.o.Signer, body), nil
	}
	select {
	case c.paced <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to sign: %w", ctx.Err())
	}
	defer func() { <-c.paced }()
	// Real time, not o.Now: this shares the CPU, it is not a duration
	// reported to anyone.
	if wait := time.Until(c.next); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting to sign: %w", ctx.Err())
		}
	}
	start := time.Now()
	h := SignatureHeaders(c.o.Signer, body)
	took := time.Since(start)
	c.next = time.Now().Add(time.Duration(float64(took) * (1 - c.o.FloorShare) / c.o.FloorShare))
	return h, nil
}

// classify maps a transport error to an Outcome.
func classify(ctx context.Context, err error) Outcome {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return OutcomeTimeout
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return OutcomeTimeout
		}
		return OutcomeDNS
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return OutcomeTLS
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return OutcomeTimeout
	}
	if strings.Contains(err.Error(), "tls: ") {
		return OutcomeTLS
	}
	return OutcomeConnect
}

// failureText is the text logged for an attempt that got no answer.
func failureText(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Sprintf("Timed out after %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// excerpt returns at most max bytes of b as the response excerpt: valid
// UTF-8 with line feeds kept, controls replaced, cut on a character
// boundary (package untrusted).
func excerpt(b []byte, max int) string { return untrusted.Lines(string(b), max) }

func truncate(s string, n int) string { return untrusted.Text(s, n) }

// MaxAttempts is how many attempts a request gets before it is given up.
const MaxAttempts = 6

// RetryDelay returns how long to wait after the attempts-th failed attempt
// (1-based) and true, or false when the request must be given up. The
// delays are Postal's RETRIES: 2 minutes after the first failure, then 3,
// 6, 10 and 15; the sixth failure gives up.
func RetryDelay(attempts int) (time.Duration, bool) {
	switch attempts {
	case 1:
		return 2 * time.Minute, true
	case 2:
		return 3 * time.Minute, true
	case 3:
		return 6 * time.Minute, true
	case 4:
		return 10 * time.Minute, true
	case 5:
		return 15 * time.Minute, true
	}
	return 0, false
}
