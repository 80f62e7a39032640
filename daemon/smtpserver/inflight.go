package smtpserver

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/mailheader"
)

// budget is the server-wide allowance of message bytes held in memory by
// sessions receiving or accepting a message (smtp_server.max_in_flight_size).
// Reservations never block: one that does not fit fails, and the session
// answers 451 4.3.1.
type budget struct {
	max  int64
	used atomic.Int64
	// chunks recycles receive's first buffers (readChunk bytes, all a
	// typical message needs), so a message does not allocate and zero
	// 32 KB that it mostly leaves unused.
	chunks sync.Pool
}

// newBudget returns the budget of max bytes, raised (with a warning) to
// what one message of maxMessage bytes needs while it is accepted (its
// buffer and the stored copy), so that a message within max_message_size
// can always be accepted on an idle server.
func newBudget(max, maxMessage int64, log *slog.Logger) *budget {
	if need := 2*maxMessage + 4*readChunk + 64<<10; max < need {
		if log != nil {
			log.Warn("smtp_server.max_in_flight_size is below what one message of max_message_size needs; raised",
				"configured_bytes", max, "bytes", need)
		}
		max = need
	}
	return &budget{max: max}
}

// gauge reports the bytes reserved now.
func (b *budget) gauge() prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "postal_smtp_server_in_flight_bytes",
		Help: "Message bytes held in memory by sessions receiving or accepting a message."},
		func() float64 { return float64(b.used.Load()) })
}

// reserve takes n bytes of the budget; false (and nothing taken) when they
// do not fit.
func (b *budget) reserve(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *budget) release(n int64) { b.used.Add(-n) }

// InFlightBytes is how many message bytes sessions hold reserved now; it
// returns to 0 once no message is being received or accepted.
func (s *Server) InFlightBytes() int64 { return s.inFlight.used.Load() }

// hold is one session's reservation of the budget; release gives it all
// back and may be called more than once.
type hold struct {
	b *budget
	n int64
	// chunk is the pooled first buffer of receive, back in the pool at
	// release: nothing may use the received bytes after that.
	chunk *[]byte
}

func (h *hold) grow(n int64) bool {
	if !h.b.reserve(n) {
		return false
	}
	h.n += n
	return true
}

func (h *hold) shrink(n int64) {
	h.b.release(n)
	h.n -= n
}

func (h *hold) release() {
	h.b.release(h.n)
	h.n = 0
	if h.chunk != nil {
		h.b.chunks.Put(h.chunk)
		h.chunk = nil
	}
}

// firstChunk returns an empty buffer of readChunk bytes' capacity, from
// the pool when it has one; it goes back at release.
func (h *hold) firstChunk() []byte {
	if p, ok := h.b.chunks.Get().(*[]byte); ok {
		h.chunk = p
		return (*p)[:0]
	}
	b := make([]byte, 0, readChunk)
	h.chunk = &b
	return b
}

// Refusals of message data over the input limits.
var (
	errHeaderTooLarge = refuse("header-too-large", 552, smtp.EnhancedCode{5, 3, 4}, "Message header too large")
	errInFlightFull   = refuse("server-busy", 451, smtp.EnhancedCode{4, 3, 1}, "Insufficient system resources, try again later")
)

// errTooBig marks data over max_message_size, read on our side of the
// limit rather than go-smtp's.
var errTooBig = errors.New("message too large")

// readChunk is how much message data is read at a time.
const readChunk = 32 << 10

// receive reads a message body from r, at most limit bytes, into a buffer
// whose capacity is reserved in h before it is allocated. The buffer starts
// at readChunk bytes (taken from a pool and given back by h.release, so the
// body must not be used after that); once that much has arrived it grows to the SIZE the
// client announced (sizeHint) when that is larger, else it doubles, so a
// client must send data before it holds memory. While it grows, the old and
// the new buffer are both reserved. The header block is checked as the data
// arrives: once it passes lim the read stops with errHeaderTooLarge, without
// looking at the rest. It returns errInFlightFull when the budget cannot
// cover the next buffer, errTooBig past limit, or the reader's error.
func receive(r io.Reader, limit, sizeHint int64, lim mailheader.Limits, h *hold) ([]byte, error) {
	scan := mailheader.NewScanner(lim)
	if !h.grow(readChunk) {
		return nil, errInFlightFull
	}
	buf := h.firstChunk()
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, errTooBig
			}
			next := min(max(2*int64(cap(buf)), sizeHint+readChunk), limit+1)
			if !h.grow(next) {
				return nil, errInFlightFull
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			h.shrink(int64(cap(buf)))
			buf = grown
		}
		end := min(len(buf)+readChunk, cap(buf))
		n, err := r.Read(buf[len(buf):end])
		if n > 0 {
			if !scan.Done() {
				if _, serr := scan.Write(buf[len(buf) : len(buf)+n]); serr != nil {
					return nil, errHeaderTooLarge
				}
			}
			buf = buf[:len(buf)+n]
		}
		if int64(len(buf)) > limit {
			return nil, errTooBig
		}
		if err == io.EOF {
			if scan.Close() != nil {
				return nil, errHeaderTooLarge
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
