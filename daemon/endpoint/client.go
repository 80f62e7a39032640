package endpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
	"github.com/postalgo/postal/daemon/webhook"
)

// Timeouts Postal allows an HTTP endpoint.
const (
	DefaultTimeout = 5 * time.Second
	MinTimeout     = 5 * time.Second
	MaxTimeout     = 60 * time.Second
	// OutputMax is how much of a response body is kept (Postal keeps 500
	// characters and stores 250).
	OutputMax = 250
)

// Verdict is what an attempt's answer means for the message.
type Verdict int

const (
	// Sent: a 2xx answer.
	Sent Verdict = iota
	// Retry: a 5xx answer, a timeout, or a connection, DNS or TLS failure.
	Retry
	// Fail: any other answer; the sender gets a bounce.
	Fail
	// FailNoBounce: 429; failed without a bounce (Postal's quirk).
	FailNoBounce
)

// Result is one attempt's answer.
type Result struct {
	Verdict Verdict
	// Code is the HTTP status, or -1 for a timeout, -2 for a connection or
	// DNS failure, -3 for a TLS failure, 0 for a request never made.
	Code int
	// Details is Postal's delivery details ("Received a 200 from <url>").
	Details string
	// Output is the start of the response body (or the failure), cleaned.
	Output   string
	SSL      bool
	Duration time.Duration
	LogID    string
}

// Options configure a Client.
type Options struct {
	// Signer signs every body (webhook signing key); required.
	Signer webhook.Signer
	// UserAgent is sent as User-Agent (default "Postal/dev").
	UserAgent string
	// RootCAs verifies HTTPS endpoints (nil: the system's roots).
	RootCAs *x509.CertPool
	// Now is the clock for durations (default time.Now).
	Now func() time.Time
}

// Client posts messages to HTTP endpoints. It is safe for concurrent use.
type Client struct {
	o    Options
	http *http.Client
}

// New returns a Client; it fails without a Signer.
func New(o Options) (*Client, error) {
	if o.Signer == nil {
		return nil, errors.New("endpoint client: a signer is required")
	}
	if o.UserAgent == "" {
		o.UserAgent = "Postal/dev"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: MaxTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	hc := &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Client{o: o, http: hc}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Deliver makes one attempt of m to ep and never returns an error: every
// failure is a Result. Basic auth comes from the URL's user info; the whole
// attempt is bounded by ep.Timeout (clamped to 5..60 s) and by ctx.
func (c *Client) Deliver(ctx context.Context, ep HTTP, m Message) Result {
	start := c.o.Now()
	res := Result{LogID: logID()}
	shown := redact(ep.URL)
	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		res.Verdict, res.Details = Fail, "Endpoint URL is not a valid http(s) URL: "+untrusted.Text(shown, 200)
		return res
	}
	res.SSL = u.Scheme == "https"
	body, ctype, err := Body(ep, m)
	if err != nil {
		res.Verdict, res.Details = Fail, "Could not build the request: "+untrusted.Text(err.Error(), 200)
		return res
	}
	timeout := ep.Timeout
	switch {
	case timeout <= 0:
		timeout = DefaultTimeout
	case timeout < MinTimeout:
		timeout = MinTimeout
	case timeout > MaxTimeout:
		timeout = MaxTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		res.Verdict, res.Details = Fail, "Could not build the request: "+untrusted.Text(err.Error(), 200)
		return res
	}
	for k, v := range webhook.SignatureHeaders(c.o.Signer, body) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", c.o.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		res.Duration = c.o.Now().Sub(start)
		res.Code = failureCode(ctx, err)
		res.Verdict = Retry
		res.Details = fmt.Sprintf("Received a %d from %s", res.Code, shown)
		res.Output = untrusted.Text(failureText(ctx, err, timeout), OutputMax)
		return res
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	res.Duration = c.o.Now().Sub(start)
	res.Code = resp.StatusCode
	res.Details = fmt.Sprintf("Received a %d from %s", res.Code, shown)
	res.Output = untrusted.Lines(strings.TrimSpace(string(head)), OutputMax)
	res.Verdict = verdict(res.Code)
	return res
}

// verdict is Postal's mapping of an HTTP status.
func verdict(code int) Verdict {
	switch {
	case code >= 200 && code < 300:
		return Sent
	case code >= 500 && code < 600:
		return Retry
	case code == http.StatusTooManyRequests:
		return FailNoBounce
	}
	return Fail
}

// failureCode is Postal's code for an attempt without an answer.
func failureCode(ctx context.Context, err error) int {
	var ne net.Error
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return -1
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recordErr),
		strings.Contains(err.Error(), "tls: "):
		return -3
	case errors.As(err, &ne) && ne.Timeout():
		return -1
	}
	return -2
}

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

// redact hides the password of a URL's user info.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// logID is 8 random upper-case alphanumerics, as Postal's log ids.
func logID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
