package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/postalgo/postal/daemon/untrusted"
)

// maxRspamdReply caps the bytes read from rspamd.
const maxRspamdReply = 1 << 20

// Rspamd asks rspamd's HTTP API (POST /checkv2), as Postal does.
type Rspamd struct {
	// URL is the base URL, e.g. http://127.0.0.1:11334 (https when
	// rspamd.ssl is set).
	URL string
	// Password and Flags are sent as rspamd's Password and Flags headers
	// when set.
	Password, Flags string
	// Timeout bounds the whole request (Postal: 10 s).
	Timeout time.Duration
	// Client is the HTTP client; nil uses one of its own that keeps up to
	// 32 idle connections to rspamd and follows no redirects.
	Client *http.Client

	once sync.Once
	own  *http.Client
}

func (r *Rspamd) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	r.once.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		r.own = &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return r.own
}

// Check posts raw to rspamd and parses its verdict.
func (r *Rspamd) Check(ctx context.Context, env Envelope, raw []byte) (SpamResult, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.URL, "/")+"/checkv2", bytes.NewReader(raw))
	if err != nil {
		return SpamResult{}, unavailable("rspamd", err)
	}
	h := req.Header
	h.Set("User-Agent", "Postal")
	if r.Password != "" {
		h.Set("Password", r.Password)
	}
	if r.Flags != "" {
		h.Set("Flags", r.Flags)
	}
	if env.RcptTo != "" {
		h.Set("Deliver-To", env.RcptTo)
		h.Set("Rcpt", env.RcptTo)
	}
	if env.MailFrom != "" {
		h.Set("From", env.MailFrom)
	}
	if env.Token != "" {
		h.Set("Queue-Id", env.Token)
	}
	if env.IP != "" {
		h.Set("IP", env.IP)
	}
	if env.Helo != "" {
		h.Set("Helo", env.Helo)
	}
	if env.Outgoing {
		// No client IP nor user: the message did not come from outside.
		h["User"], h["Ip"] = []string{""}, []string{""}
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return SpamResult{}, unavailable("rspamd", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRspamdReply+1))
	if err != nil {
		return SpamResult{}, unavailable("rspamd", fmt.Errorf("reading the reply: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return SpamResult{}, unavailable("rspamd", fmt.Errorf("HTTP %d: %s", resp.StatusCode,
			untrusted.Text(string(body), 200)))
	}
	if len(body) > maxRspamdReply {
		return SpamResult{}, unavailable("rspamd", fmt.Errorf("reply longer than %d bytes", maxRspamdReply))
	}
	res, err := ParseRspamdReply(body)
	if err != nil {
		return SpamResult{}, unavailable("rspamd", err)
	}
	return res, nil
}

// rspamdReply is the part of /checkv2's JSON we read.
type rspamdReply struct {
	Score   *float64                `json:"score"`
	Symbols map[string]rspamdSymbol `json:"symbols"`
}

type rspamdSymbol struct {
	Name        string  `json:"name"`
	Score       float64 `json:"score"`
	Description string  `json:"description"`
}

// ParseRspamdReply parses /checkv2's JSON: the total score and one check
// per symbol (its name, score and description, which may be empty). A
// reply without a score is an error.
func ParseRspamdReply(b []byte) (SpamResult, error) {
	var r SpamResult
	if len(b) > maxRspamdReply {
		return r, fmt.Errorf("rspamd reply longer than %d bytes", maxRspamdReply)
	}
	var rep rspamdReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return r, fmt.Errorf("rspamd reply: %w", err)
	}
	if rep.Score == nil || !finite(*rep.Score) {
		return r, fmt.Errorf("rspamd reply: no score")
	}
	r.Score = *rep.Score
	checks := make([]Check, 0, len(rep.Symbols))
	for key, s := range rep.Symbols {
		name := s.Name
		if name == "" {
			name = key
		}
		if !finite(s.Score) {
			continue
		}
		checks = append(checks, newCheck(name, s.Score, s.Description))
	}
	r.Checks = top(checks)
	return r, nil
}
