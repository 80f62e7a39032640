package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/redisconn"
)

// DefaultTTL is the lease TTL when Options.TTL is zero.
const DefaultTTL = 15 * time.Second

// ErrLost is the cause of a term's cancellation when Redis says the lease is
// no longer this term's (it expired and was taken, or was deleted).
var ErrLost = errors.New("lease: lost")

// ErrTrustExpired is the cause of a term's cancellation when no renewal
// succeeded within the trust window.
var ErrTrustExpired = errors.New("lease: trust window expired without a successful renewal")

// Options configures a Lease.
type Options struct {
	// Client is required.
	Client redis.UniversalClient
	// Keys names the keys; the lease lives at lease:<Name>.
	Keys redisconn.Keys
	// Name identifies the lease ("cron", "requeuer"); required.
	Name string
	// Owner identifies this contender; default "<host>:<pid>:<random>".
	Owner string
	// TTL is how long a term lasts without renewal; default 15s.
	TTL time.Duration
	// RenewEvery is the renewal and campaign period; default TTL/3. It must
	// be shorter than the trust window, TTL - TTL/5.
	RenewEvery time.Duration
	// Now is the local clock; default time.Now.
	Now func() time.Time
	// Log receives term changes and Redis errors; nil discards.
	Log *slog.Logger
}

// Lease campaigns for one named lease. Run it once at a time.
type Lease struct {
	c          redis.UniversalClient
	key        string
	tokenKey   string
	name       string
	owner      string
	ttl        time.Duration
	margin     time.Duration
	renewEvery time.Duration
	now        func() time.Time
	log        *slog.Logger
	scripts    scripts
}

// New returns a Lease; it does not contact Redis. Invalid options are
// reported by Run.
func New(o Options) *Lease {
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.RenewEvery == 0 {
		o.RenewEvery = o.TTL / 3
	}
	if o.Owner == "" {
		o.Owner = DefaultOwner()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Lease{
		c:          o.Client,
		key:        o.Keys.Key("lease", o.Name),
		tokenKey:   o.Keys.Key("lease", o.Name, "token"),
		name:       o.Name,
		owner:      o.Owner,
		ttl:        o.TTL,
		margin:     o.TTL / 5,
		renewEvery: o.RenewEvery,
		now:        o.Now,
		log:        o.Log.With("lease", o.Name, "owner", o.Owner),
		scripts:    newScripts(),
	}
}

// DefaultOwner returns "<host>:<pid>:<8 random hex digits>".
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Owner returns this contender's identity.
func (l *Lease) Owner() string { return l.owner }

func (l *Lease) validate() error {
	switch {
	case l.c == nil:
		return errors.New("lease: no redis client")
	case l.name == "":
		return errors.New("lease: empty name")
	case strings.ContainsAny(l.owner, " \n"):
		return fmt.Errorf("lease %s: owner %q contains a space or newline", l.name, l.owner)
	case l.ttl < 10*time.Millisecond:
		return fmt.Errorf("lease %s: ttl %v is below 10ms", l.name, l.ttl)
	case l.renewEvery <= 0 || l.renewEvery >= l.ttl-l.margin:
		return fmt.Errorf("lease %s: renew interval %v must be positive and shorter than the trust window %v (ttl - ttl/5)",
			l.name, l.renewEvery, l.ttl-l.margin)
	}
	return nil
}

// Run campaigns for the lease until ctx ends. During each term it runs fn
// with the term's fencing token and a context that is cancelled when ctx
// ends, when the term is lost (cause ErrLost) or when the trust window ends
// (cause ErrTrustExpired); see the package documentation. fn's error is
// logged and ends the term. Run releases the lease after each term and
// returns nil once ctx has ended, or an error at once for invalid options.
func (l *Lease) Run(ctx context.Context, fn func(ctx context.Context, token int64) error) error {
	if err := l.validate(); err != nil {
		return err
	}
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wait.C:
		}
		start := l.now()
		token, ok, err := l.acquire(ctx, start)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				l.log.Warn("lease acquire failed", "err", err)
			}
		case ok:
			l.hold(ctx, token, start, fn)
		}
		wait.Reset(l.renewEvery)
	}
}

func (l *Lease) value(token int64) string {
	return strconv.FormatInt(token, 10) + " " + l.owner
}

// acquire tries to start a term. ok is false when someone else holds it.
func (l *Lease) acquire(ctx context.Context, now time.Time) (token int64, ok bool, err error) {
	t, err := l.scripts.acquire.Run(ctx, l.c, []string{l.key, l.tokenKey},
		l.owner, l.ttl.Milliseconds(), now.UnixMilli()).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("lease %s: acquire: %w", l.name, err)
	}
	return t, t > 0, nil
}

type renewal struct {
	attempt time.Time
	held    bool
	err     error
}

// hold runs one term: fn under a context bounded by the trust window, a
// renewer beside it, and a release at the end.
func (l *Lease) hold(ctx context.Context, token int64, start time.Time, fn func(context.Context, int64) error) {
	value := l.value(token)
	log := l.log.With("token", token)
	log.Info("lease acquired")
	trustedUntil := start.Add(l.ttl - l.margin)

	termCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- fn(termCtx, token) }()

	// The renewer runs apart so that a Redis call that hangs cannot delay
	// the step-down at the end of the trust window.
	stopRenew := make(chan struct{})
	renewals := make(chan renewal)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(l.renewEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopRenew:
				return
			case <-tick.C:
			}
			r := renewal{attempt: l.now()}
			r.held, r.err = l.renew(termCtx, value)
			select {
			case renewals <- r:
			case <-stopRenew:
				return
			}
		}
	})

	trust := time.NewTimer(trustedUntil.Sub(l.now()))
	defer trust.Stop()
	var fnErr error
	lost := false
	ctxDone := ctx.Done()
wait:
	for {
		select {
		case fnErr = <-done:
			break wait
		case <-ctxDone:
			ctxDone = nil
			cancel(context.Cause(ctx))
		case r := <-renewals:
			switch {
			case r.err != nil:
				log.Warn("lease renewal failed; retrying until the trust window ends",
					"err", r.err, "trusted_until", trustedUntil)
			case !r.held:
				log.Warn("lease lost")
				lost = true
				cancel(ErrLost)
			default:
				if next := r.attempt.Add(l.ttl - l.margin); next.After(trustedUntil) {
					trustedUntil = next
					trust.Reset(trustedUntil.Sub(l.now()))
				}
			}
		case <-trust.C:
			if left := trustedUntil.Sub(l.now()); left > 0 {
				trust.Reset(left)
				continue
			}
			log.Warn("lease trust window ended without a successful renewal; stepping down")
			cancel(ErrTrustExpired)
		}
	}
	close(stopRenew)
	wg.Wait()
	if fnErr != nil && ctx.Err() == nil {
		log.Error("lease holder function failed", "err", fnErr)
	}
	if !lost {
		// Release even when ctx has ended (shutdown), within a TTL.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
		if err := l.release(rctx, value); err != nil {
			log.Warn("lease release failed; it will expire", "err", err)
		}
		rcancel()
	}
	log.Info("lease term ended", "cause", context.Cause(termCtx))
}

// renew extends this term. held is false when the key is no longer the term's.
func (l *Lease) renew(ctx context.Context, value string) (held bool, err error) {
	n, err := l.scripts.renew.Run(ctx, l.c, []string{l.key}, value, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("lease %s: renew: %w", l.name, err)
	}
	return n == 1, nil
}

// release deletes the key if it is still this term's.
func (l *Lease) release(ctx context.Context, value string) error {
	if err := l.scripts.release.Run(ctx, l.c, []string{l.key}, value).Err(); err != nil {
		return fmt.Errorf("lease %s: release: %w", l.name, err)
	}
	return nil
}

// Holder reports who holds lease name, for status displays: the owner, the
// term's fencing token and the time left before the key expires. When nobody
// holds it, owner is "" and err is nil. It returns a wrapped error when Redis
// fails or the key holds something unexpected.
func Holder(ctx context.Context, c redis.UniversalClient, keys redisconn.Keys, name string) (owner string, token int64, ttl time.Duration, err error) {
	key := keys.Key("lease", name)
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		pttl = p.PTTL(ctx, key)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return "", 0, 0, nil
	}
	if err != nil {
		return "", 0, 0, fmt.Errorf("lease %s: holder: %w", name, err)
	}
	tok, owner, ok := strings.Cut(get.Val(), " ")
	token, perr := strconv.ParseInt(tok, 10, 64)
	if !ok || perr != nil {
		return "", 0, 0, fmt.Errorf("lease %s: holder: malformed value %q", name, get.Val())
	}
	return owner, token, max(pttl.Val(), 0), nil
}

type scripts struct {
	acquire, renew, release *redis.Script
}

func newScripts() scripts {
	return scripts{
		acquire: redis.NewScript(acquireLua),
		renew:   redis.NewScript(renewLua),
		release: redis.NewScript(releaseLua),
	}
}

// acquireLua: KEYS lease, token counter. ARGV owner, ttl ms, local unix ms.
// Returns the new term's token, or 0 when the lease is held.
const acquireLua = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if t < floor then
  t = floor
  redis.call('SET', KEYS[2], string.format('%d', t))
end
redis.call('SET', KEYS[1], string.format('%d', t) .. ' ' .. ARGV[1], 'PX', ARGV[2])
return t
`

// renewLua: KEYS lease. ARGV term value, ttl ms. Returns 1 if extended.
const renewLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`

// releaseLua: KEYS lease. ARGV term value. Returns 1 if deleted.
const releaseLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`
