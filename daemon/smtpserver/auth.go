package smtpserver

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
)

// plainServer is SASL PLAIN (RFC 4616) read as Postal reads it: of the
// NUL-separated fields the last is the password (the SMTP credential's key)
// and the ones before it (authorization and user name) are free-form.
type plainServer struct {
	authenticate  func(password string) error
	protocolError func() error
	done          bool
}

var _ sasl.Server = (*plainServer)(nil)

// Next asks for the response when the client gave none, then checks it.
func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.done {
		return nil, true, p.protocolError()
	}
	if response == nil {
		return []byte{}, false, nil
	}
	p.done = true
	fields := bytes.Split(response, []byte{0})
	if len(fields) < 2 {
		return nil, true, p.protocolError()
	}
	return nil, true, p.authenticate(string(fields[len(fields)-1]))
}

// loginServer is the LOGIN mechanism: the user name (free-form, ignored)
// and then the password, each asked for with Postal's prompts.
type loginServer struct {
	authenticate  func(password string) error
	protocolError func() error
	step          int
}

var _ sasl.Server = (*loginServer)(nil)

// Next walks the user name / password exchange; a user name given as the
// initial response skips the first prompt.
func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(string(response))
	default:
		return nil, true, l.protocolError()
	}
}

// failureWindow counts failed AUTH attempts per client address over a
// sliding window, in memory (each smtp-server process counts its own).
type failureWindow struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	byIP   map[netip.Addr][]time.Time
}

func newFailureWindow(limit int, window time.Duration, now func() time.Time) *failureWindow {
	return &failureWindow{max: limit, window: window, now: now, byIP: map[netip.Addr][]time.Time{}}
}

// blocked reports whether ip has failed max times within the window.
func (w *failureWindow) blocked(ip netip.Addr) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.recent(ip, w.now())) >= w.max
}

// record counts one failure for ip.
func (w *failureWindow) record(ip netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	times := append(w.recent(ip, now), now)
	if len(times) > w.max {
		times = times[len(times)-w.max:] // only the last max matter
	}
	w.byIP[ip] = times
	if len(w.byIP) > maxCacheEntries {
		for a := range w.byIP {
			w.recent(a, now)
		}
		// Still full of recent failures (many addresses): forget arbitrary
		// ones; Options.AuthFailures still counts them in Redis.
		for a := range w.byIP {
			if len(w.byIP) < maxCacheEntries*9/10 {
				break
			}
			delete(w.byIP, a)
		}
	}
}

// recent drops ip's failures older than the window and returns the rest.
func (w *failureWindow) recent(ip netip.Addr, now time.Time) []time.Time {
	times := w.byIP[ip]
	cut := 0
	for cut < len(times) && now.Sub(times[cut]) >= w.window {
		cut++
	}
	times = times[cut:]
	if len(times) == 0 {
		delete(w.byIP, ip)
		return nil
	}
	w.byIP[ip] = times
	return times
}
