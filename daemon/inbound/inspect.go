package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postalgo/postal/daemon/inspect"
	"github.com/postalgo/postal/daemon/mailheader"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/untrusted"
)

// Postal's details texts for inspection verdicts, and ours for a threat.
const (
	detailsQuarantine = "Message placed into quarantine."
	detailsSpamFail   = "Message is spam and the route specifies it should be failed."
	detailsThreat     = "Message contains a threat (%s): held, never forwarded to an endpoint."
)

// Inspector scans a message for spam and viruses (*inspect.Inspector).
type Inspector interface {
	Inspect(ctx context.Context, env inspect.Envelope, raw []byte) (inspect.Result, error)
	Spam() bool
	Virus() bool
}

// verdict is a message's inspection as routing uses it: recorded earlier,
// or made now (then record is the effect that stores it).
type verdict struct {
	inspected     bool
	spamChecked   bool
	spam          bool
	score         float64
	threatChecked bool
	threat        bool
	threatDetails string
	record        *store.NewInspection
}

// inspect returns w's verdict: the recorded one when the message was
// inspected before, otherwise a new inspection. A scanner that is down
// (down caches it for the rest of the batch) gives a nil verdict and err,
// unless the policy accepts unscanned mail.
func (h *Handler) inspect(ctx context.Context, w *work, down *error) (*verdict, error) {
	in := h.o.Inspector
	if in == nil || (!in.Spam() && !in.Virus()) {
		return &verdict{}, nil
	}
	threshold := w.server.SpamThreshold
	if r := w.inspection; r != nil && r.Inspected {
		v := &verdict{inspected: true, score: r.SpamScore, spam: r.Spam, threat: r.Threat, threatDetails: r.ThreatDetails}
		if r.Skipped == "" {
			v.spamChecked = in.Spam()
			v.threatChecked = r.ThreatDetails != ""
		}
		return v, nil
	}
	if w.raw == nil {
		return &verdict{}, nil
	}
	var res inspect.Result
	err := *down
	switch {
	case w.scanned != nil:
		res, err = w.scanned.res, w.scanned.err
	case err == nil:
		res, err = in.Inspect(ctx, envelope(w), w.raw)
	}
	if err != nil {
		var u *inspect.UnavailableError
		if errors.As(err, &u) && ctx.Err() == nil {
			*down = err
		}
		if !h.o.AcceptUnscanned || ctx.Err() != nil {
			return nil, err // our own shutdown is never a reason to pass mail unscanned
		}
		h.log.Warn("inspection failed; delivering unscanned as inspection.when_unavailable says", "message_id", w.m.ID, "err", err)
		res = inspect.Result{Skipped: "not scanned: " + err.Error()}
	}
	v := &verdict{inspected: true, spamChecked: res.SpamChecked, score: res.SpamScore,
		threatChecked: res.ThreatChecked, threat: res.Threat, threatDetails: res.ThreatDetails}
	v.spam = v.spamChecked && v.score > threshold
	rec := &store.NewInspection{Spam: v.spam, SpamScore: v.score, Threat: v.threat, ThreatDetails: v.threatDetails,
		Skipped: res.Skipped}
	for _, c := range res.Checks {
		rec.Checks = append(rec.Checks, store.SpamCheck{Code: c.Code, Score: c.Score, Description: c.Description})
	}
	v.record = rec
	return v, nil
}

// envelope is what the scanners are told about w: its envelope, and the
// client's IP and HELO name from the Received field our SMTP server put
// first.
func envelope(w *work) inspect.Envelope {
	env := inspect.Envelope{MailFrom: w.m.MailFrom, RcptTo: w.m.RcptTo, Token: w.m.Token}
	env.Helo, env.IP = peer(w.raw)
	return env
}

// peer reads "from HELO (RDNS [IP])" from raw's first field when it is a
// Received field; "" for what it does not find.
func peer(raw []byte) (helo, ip string) {
	h := mailheader.Parse(raw)
	fs := h.Fields()
	if len(fs) == 0 || !strings.EqualFold(fs[0].Name, "Received") {
		return "", ""
	}
	v := h.Value(fs[0])
	if i := strings.Index(v, " by "); i >= 0 {
		v = v[:i]
	}
	rest, ok := strings.CutPrefix(v, "from ")
	if !ok {
		return "", ""
	}
	helo, rest, _ = strings.Cut(rest, " ")
	if i := strings.LastIndexByte(rest, '['); i >= 0 {
		if j := strings.IndexByte(rest[i:], ']'); j > 0 {
			if a, err := netip.ParseAddr(rest[i+1 : i+j]); err == nil {
				ip = a.String()
			}
		}
	}
	return untrusted.Text(helo, 255), ip
}

// scan is an inspection made ahead of routing.
type scan struct {
	res inspect.Result
	err error
}

// prescan inspects, at most h.o.InspectConcurrency at a time, the messages
// of the batch routing will inspect (not yet inspected, not bounces, under
// the attempt limit), so a batch waits for its slowest scan rather than
// for the sum of them. A scanner found down stops the scans not started.
func (h *Handler) prescan(ctx context.Context, works []*work) {
	if h.o.Inspector == nil {
		return
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, h.o.InspectConcurrency)
		mu   sync.Mutex
		down bool
	)
	for _, w := range works {
		if w == nil || w.raw == nil || w.m.Bounce || w.q.Attempts >= h.o.MaxAttempts || (w.inspection != nil && w.inspection.Inspected) {
			continue
		}
		sem <- struct{}{}
		mu.Lock()
		stop := down
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		wg.Add(1)
		go func(w *work) {
			defer func() { <-sem; wg.Done() }()
			res, err := h.o.Inspector.Inspect(ctx, envelope(w), w.raw)
			w.scanned = &scan{res, err}
			if err != nil {
				mu.Lock()
				down = true
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

// inspected applies the inspection steps of Postal's order to w: the
// failure threshold (HardFail, no bounce), then, for mail that is not a
// manual release, a threat (Held: ours; Postal only flags it) and the
// route's spam mode (Quarantine: Held; Fail: HardFail). It returns the
// outcome when one of them decides, else ok.
func (h *Handler) inspected(ctx context.Context, w *work, v *verdict, now time.Time) (store.Outcome, bool) {
	q := w.q
	if v.spamChecked && v.score >= w.server.SpamFailureThreshold {
		d := "Message's spam score is higher than the failure threshold for this server. Threshold is currently " +
			rubyFloat(w.server.SpamFailureThreshold) + "."
		return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: d}), false, now), true
	}
	return store.Outcome{}, false
}

// screened applies the threat hold and the route's spam mode (steps that
// come once the message has a route).
func (h *Handler) screened(ctx context.Context, w *work, v *verdict, now time.Time) (store.Outcome, bool) {
	if w.manual {
		return store.Outcome{}, false
	}
	q := w.q
	if v.threat {
		return h.finish(ctx, w, store.Hold(q, now.Add(h.o.HoldExpiry), fmt.Sprintf(detailsThreat, v.threatDetails)), false, now), true
	}
	if v.spam && w.route != nil {
		switch w.route.SpamMode {
		case store.SpamModeQuarantine:
			return h.finish(ctx, w, store.Hold(q, now.Add(h.o.HoldExpiry), detailsQuarantine), false, now), true
		case store.SpamModeFail:
			return h.finish(ctx, w, store.HardFail(q, store.NewDelivery{Details: detailsSpamFail}), false, now), true
		}
	}
	return store.Outcome{}, false
}

// headers are the X-Postal-Spam and X-Postal-Threat fields prepended to
// what an endpoint receives, as Postal adds them; "unchecked" when no
// scanner of that kind looked at the message (ours: Postal says "no").
func (v *verdict) headers(threshold float64) []byte {
	if !v.inspected {
		return nil
	}
	spam, threat := "unchecked", "unchecked"
	if v.spamChecked {
		spam = yesNo(v.spam)
	}
	if v.threatChecked {
		threat = yesNo(v.threat)
	}
	var b bytes.Buffer
	b.WriteString("X-Postal-Spam: " + spam + "\r\n")
	b.WriteString("X-Postal-Spam-Threshold: " + rubyFloat(threshold) + "\r\n")
	if v.spamChecked {
		b.WriteString("X-Postal-Spam-Score: " + rubyFloat(v.score) + "\r\n")
	}
	b.WriteString("X-Postal-Threat: " + threat + "\r\n")
	return b.Bytes()
}

// spamStatus is the Hash payload's spam_status.
func (v *verdict) spamStatus() string {
	switch {
	case v.spam:
		return "Spam"
	case v.spamChecked:
		return "NotSpam"
	}
	return "NotChecked"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// rubyFloat prints f as Ruby prints a Float: "5.0", "2.5", "-0.3".
func rubyFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "0.0"
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		s += ".0"
	}
	return s
}
