package screen

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/postalgo/postal/daemon/store"
)

// MaxQuery caps the filter line an operator types (bytes).
const MaxQuery = 1024

// ParseQuery turns the Messages screen's filter line into a filter. The
// line is space-separated terms: key:value with keys server (an id), scope,
// status, from, to, tag, subject, since and until (a duration back from now
// such as 90m or 2h, or an RFC 3339 time); the word held (the held preset);
// and bare words, which join into a subject substring. Status and scope
// match case-insensitively against the known values. It runs in time linear
// in the line and reports the first bad term.
func ParseQuery(q string, now time.Time) (store.MessageFilter, error) {
	var f store.MessageFilter
	if len(q) > MaxQuery {
		return f, fmt.Errorf("filter is %d bytes, more than %d", len(q), MaxQuery)
	}
	var subject []string
	for _, term := range strings.Fields(q) {
		k, v, ok := strings.Cut(term, ":")
		if !ok {
			if strings.EqualFold(term, "held") {
				f.Held = true
				continue
			}
			subject = append(subject, term)
			continue
		}
		if v == "" {
			return f, fmt.Errorf("%s: needs a value", k)
		}
		switch strings.ToLower(k) {
		case "server":
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return f, fmt.Errorf("server:%s: want a server id", v)
			}
			f.ServerID = id
		case "scope":
			s, ok := oneOf(v, store.ScopeOutgoing, store.ScopeIncoming)
			if !ok {
				return f, fmt.Errorf("scope:%s: want %s or %s", v, store.ScopeOutgoing, store.ScopeIncoming)
			}
			f.Scope = s
		case "status":
			s, ok := oneOf(v, Statuses()...)
			if !ok {
				return f, fmt.Errorf("status:%s: want one of %s", v, strings.Join(Statuses(), ", "))
			}
			f.Status = s
		case "from":
			f.From = v
		case "to":
			f.To = v
		case "tag":
			f.Tag = v
		case "subject":
			subject = append(subject, v)
		case "since", "until":
			t, err := parseWhen(v, now)
			if err != nil {
				return f, fmt.Errorf("%s:%s: %w", k, v, err)
			}
			if strings.EqualFold(k, "since") {
				f.Since = t
			} else {
				f.Until = t
			}
		default:
			return f, fmt.Errorf("unknown filter %q (server, scope, status, from, to, tag, subject, since, until, held)", k)
		}
	}
	f.Subject = strings.Join(subject, " ")
	return f, f.Validate()
}

// Statuses are the message statuses a filter accepts.
func Statuses() []string {
	return []string{store.StatusPending, store.StatusSent, store.StatusSoftFail, store.StatusHardFail, store.StatusHeld,
		store.StatusBounced, store.StatusHoldCancelled, store.StatusProcessed}
}

func oneOf(v string, options ...string) (string, bool) {
	for _, o := range options {
		if strings.EqualFold(v, o) {
			return o, true
		}
	}
	return "", false
}

// parseWhen reads "90m"/"2h"/"3d" (back from now) or an RFC 3339 time.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 || d > 36500 {
			return time.Time{}, fmt.Errorf("want a duration (90m, 2h, 3d) or an RFC 3339 time")
		}
		return now.Add(-time.Duration(d) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("want a duration (90m, 2h, 3d) or an RFC 3339 time")
	}
	return now.Add(-d), nil
}
