// Package inspect checks a message for spam and viruses with the scanners
// Postal supports: rspamd (HTTP POST /checkv2), SpamAssassin's spamd
// (REPORT SPAMC/1.2 over TCP) and ClamAV's clamd (zINSTREAM over TCP).
//
// It is a leaf: a message's bytes and envelope in, a Result out; it writes
// nothing. Everything a scanner says is foreign text: replies are read up
// to a cap (spamd 256 KiB, rspamd 1 MiB, clamd 4 KiB), parsed in linear
// time, keep at most MaxChecks checks whose codes and descriptions pass
// through daemon/untrusted, and scores must be finite. Every call is bounded
// by its scanner's timeout and by the context.
//
// Contract: Inspect returns either a complete Result (every enabled scanner
// answered) or an error that is an *UnavailableError naming the scanner
// that could not be asked or did not answer usably. It never returns a
// partial result: the caller decides what an unscanned message becomes
// (docs/operations.md, "Spam and virus inspection").
package inspect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Caps on what a scanner's reply may bring in.
const (
	// MaxChecks is the most checks a Result keeps (the highest scores).
	MaxChecks = 100
	// MaxCodeLen and MaxDescriptionLen cap a check's code and description
	// in bytes.
	MaxCodeLen        = 64
	MaxDescriptionLen = 256
	// MaxThreatLen caps a threat's name.
	MaxThreatLen = 256
)

// Check is one rule a spam scanner matched, with the score it added.
type Check struct {
	Code        string
	Score       float64
	Description string
}

// SpamResult is what a spam scanner (rspamd or spamd) reports.
type SpamResult struct {
	// Score is the scanner's total score for the message.
	Score float64
	// Checks are the matched rules, highest absolute score first.
	Checks []Check
}

// ThreatResult is what a virus scanner reports.
type ThreatResult struct {
	Threat bool
	// Details is the signature's name when Threat is set, else
	// "No threats found".
	Details string
}

// Result is a message's inspection.
type Result struct {
	// SpamChecked is true when a spam scanner looked at the message;
	// SpamScore and Checks are its findings.
	SpamChecked bool
	SpamScore   float64
	Checks      []Check
	// ThreatChecked is true when a virus scanner looked at the message.
	ThreatChecked bool
	Threat        bool
	ThreatDetails string
	// Skipped, when set, says why no scanner looked at the message (it is
	// larger than the configured maximum size).
	Skipped string
}

// Envelope is what scanners are told about a message besides its bytes.
type Envelope struct {
	MailFrom string
	RcptTo   string
	// Token is the message's token (rspamd's Queue-Id).
	Token string
	// IP and Helo are the sending client's address and HELO name, when
	// known (rspamd's IP and Helo headers).
	IP, Helo string
	// Outgoing is set for mail a server sends (rather than receives):
	// rspamd is told there is no client IP nor user, and spamd's rules
	// about the receiving hop are ignored, as Postal does.
	Outgoing bool
}

// UnavailableError reports a scanner that could not be reached, timed out,
// refused the request or answered something unusable. A message it could
// not scan is not a clean message.
type UnavailableError struct {
	// Scanner is "rspamd", "spamd" or "clamav".
	Scanner string
	Err     error
}

func (e *UnavailableError) Error() string {
	return e.Scanner + " unavailable: " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

func unavailable(scanner string, err error) error {
	var u *UnavailableError
	if errors.As(err, &u) {
		return err
	}
	return &UnavailableError{Scanner: scanner, Err: err}
}

// SpamChecker is a spam scanner (*Rspamd or *Spamd).
type SpamChecker interface {
	Check(ctx context.Context, env Envelope, raw []byte) (SpamResult, error)
}

// Inspector runs the enabled scanners over a message.
type Inspector struct {
	spam    SpamChecker
	virus   *ClamAV
	maxSize int
}

// New returns an Inspector with spam (nil for none: Postal asks rspamd if
// enabled, else spamd) and virus (nil for none) scanners. Messages larger
// than maxSize bytes (0: no limit) are not scanned. It returns nil when no
// scanner is enabled: a nil *Inspector inspects nothing.
func New(spam SpamChecker, virus *ClamAV, maxSize int) *Inspector {
	if spam == nil && virus == nil {
		return nil
	}
	return &Inspector{spam: spam, virus: virus, maxSize: maxSize}
}

// Spam reports whether a spam scanner is configured.
func (i *Inspector) Spam() bool { return i != nil && i.spam != nil }

// Virus reports whether a virus scanner is configured.
func (i *Inspector) Virus() bool { return i != nil && i.virus != nil }

// Inspect runs the spam scanner and the virus scanner over raw, at once. A message
// over the size limit comes back with Skipped set and nothing checked. Any
// scanner's failure fails the whole inspection with an *UnavailableError.
func (i *Inspector) Inspect(ctx context.Context, env Envelope, raw []byte) (Result, error) {
	var r Result
	if i == nil {
		return r, nil
	}
	if i.maxSize > 0 && len(raw) > i.maxSize {
		r.Skipped = fmt.Sprintf("message of %d bytes is larger than the inspection limit of %d bytes", len(raw), i.maxSize)
		return r, nil
	}
	// The two scanners are asked at once: a message waits for the slower.
	var (
		t    ThreatResult
		terr error
		done = make(chan struct{})
	)
	if i.virus != nil {
		go func() {
			defer close(done)
			t, terr = i.virus.Scan(ctx, raw)
		}()
	} else {
		close(done)
	}
	if i.spam != nil {
		s, err := i.spam.Check(ctx, env, raw)
		if err != nil {
			<-done
			return Result{}, err
		}
		r.SpamChecked, r.SpamScore, r.Checks = true, s.Score, s.Checks
	}
	<-done
	if i.virus != nil {
		if terr != nil {
			return Result{}, terr
		}
		r.ThreatChecked, r.Threat, r.ThreatDetails = true, t.Threat, t.Details
	}
	return r, nil
}

// finite rejects NaN and infinities, which no scanner means.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// deadline is the earlier of now+timeout and ctx's deadline.
func deadline(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}
