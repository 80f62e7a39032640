// Package ratelimit counts events per subject (an IP address or network, a
// credential) in a sliding window kept in Redis, so that every process of
// an installation sees the same counts: five AUTH failures spread over
// three smtp-server processes are five, not five per process.
//
// Acquire checks the limit and counts an event in one atomic step (a Lua
// script), so N concurrent attempts get at most the free places between
// them; Release takes an acquired event back. Record counts an event
// unconditionally and Exceeded only reads.
//
// Each subject is a sorted set of event times, trimmed to the window and to
// the newest Max events on every Record or Acquire and expiring with the
// window, so a subject costs at most Max small members and disappears when
// quiet.
package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/redisconn"
)

// Options configures a Window.
type Options struct {
	// Client and Keys are the Redis connection and key namer; required.
	Client redis.UniversalClient
	Keys   redisconn.Keys
	// Name separates this limit's keys from other limits'; required.
	Name string
	// Max is how many events within Window make a subject exceeded; at
	// least 1.
	Max int
	// Window is how far back events count; positive.
	Window time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Window is a sliding-window event counter shared through Redis. It is safe
// for concurrent use.
type Window struct {
	o Options
}

// New checks o and returns a Window.
func New(o Options) (*Window, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("ratelimit: nil Redis client")
	case o.Name == "":
		return nil, errors.New("ratelimit: empty name")
	case o.Max < 1:
		return nil, fmt.Errorf("ratelimit: %s: max %d, want at least 1", o.Name, o.Max)
	case o.Window <= 0:
		return nil, fmt.Errorf("ratelimit: %s: window %v, want a positive duration", o.Name, o.Window)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Window{o: o}, nil
}

func (w *Window) key(subject string) string {
	return w.o.Keys.Key("ratelimit", w.o.Name, subject)
}

// Exceeded reports whether subject has had Max or more events within the
// window ending now. It returns a wrapped error when Redis fails.
func (w *Window) Exceeded(ctx context.Context, subject string) (bool, error) {
	since := w.o.Now().Add(-w.o.Window).UnixMicro()
	n, err := w.o.Client.ZCount(ctx, w.key(subject), "("+strconv.FormatInt(since, 10), "+inf").Result()
	if err != nil {
		return false, fmt.Errorf("ratelimit: %s: count: %w", w.o.Name, err)
	}
	return n >= int64(w.o.Max), nil
}

// acquireScript trims a subject's set to the window, and adds the event
// only if fewer than the limit remain, all in one step so that concurrent
// callers cannot all pass the check before any of them is counted.
// KEYS[1] the set; ARGV: score now (µs), cutoff (µs, inclusive), max,
// member, TTL (ms). It returns 1 when the event was added, 0 when not.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// Acquire counts one event for subject now unless subject already has Max
// events within the window: the check and the count are one atomic step
// (a Lua script), so of N concurrent callers at most the free places
// succeed, across every process. ok reports whether the event was counted;
// token names it for Release. It returns a wrapped error when Redis fails
// (nothing is then known to be counted).
func (w *Window) Acquire(ctx context.Context, subject string) (token string, ok bool, err error) {
	now := w.o.Now()
	member := newMember(now)
	cutoff := strconv.FormatInt(now.Add(-w.o.Window).UnixMicro(), 10)
	n, err := acquireScript.Run(ctx, w.o.Client, []string{w.key(subject)},
		now.UnixMicro(), cutoff, w.o.Max, member, w.o.Window.Milliseconds()).Int()
	if err != nil {
		return "", false, fmt.Errorf("ratelimit: %s: acquire: %w", w.o.Name, err)
	}
	if n != 1 {
		return "", false, nil
	}
	return member, true, nil
}

// Release takes back an event Acquire counted (token is what it returned),
// for an attempt that turned out not to count: a successful AUTH. Releasing
// an event already out of the window does nothing. It returns a wrapped
// error when Redis fails.
func (w *Window) Release(ctx context.Context, subject, token string) error {
	if err := w.o.Client.ZRem(ctx, w.key(subject), token).Err(); err != nil {
		return fmt.Errorf("ratelimit: %s: release: %w", w.o.Name, err)
	}
	return nil
}

// newMember is a set member unique to one event at now.
func newMember(now time.Time) string {
	var id [6]byte
	_, _ = rand.Read(id[:])
	return strconv.FormatInt(now.UnixNano(), 10) + "-" + hex.EncodeToString(id[:])
}

// Record counts one event for subject now, in one round trip. It returns a
// wrapped error when Redis fails.
func (w *Window) Record(ctx context.Context, subject string) error {
	now := w.o.Now()
	key := w.key(subject)
	member := newMember(now)
	_, err := w.o.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(now.UnixMicro()), Member: member})
		p.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now.Add(-w.o.Window).UnixMicro(), 10))
		p.ZRemRangeByRank(ctx, key, 0, int64(-w.o.Max-1))
		p.PExpire(ctx, key, w.o.Window)
		return nil
	})
	if err != nil {
		return fmt.Errorf("ratelimit: %s: record: %w", w.o.Name, err)
	}
	return nil
}
