package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

// testLog sends the lease's logs to the test output.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// runLease starts l.Run in the background and returns a stop function that
// cancels it and waits for Run to return (failing the test on an error).
func runLease(t *testing.T, l *lease.Lease, fn func(context.Context, int64) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx, fn) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run returned %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor[T any](t *testing.T, ch <-chan T, within time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("timed out after %v waiting for %s", within, what)
		var zero T
		return zero
	}
}

func TestInvalidOptionsAreRejectedByRun(t *testing.T) {
	c, keys := redistest.New(t)
	tests := []struct {
		name string
		o    lease.Options
		want string
	}{
		{"no name", lease.Options{Client: c, Keys: keys}, "empty name"},
		{"no client", lease.Options{Keys: keys, Name: "x"}, "no redis client"},
		{"renewal slower than the trust window", lease.Options{Client: c, Keys: keys, Name: "x", TTL: time.Second, RenewEvery: 800 * time.Millisecond}, "trust window"},
		{"owner with a space", lease.Options{Client: c, Keys: keys, Name: "x", Owner: "a b"}, "space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			err := lease.New(tt.o).Run(context.Background(), func(context.Context, int64) error { called = true; return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) || called {
				t.Fatalf("Run = %v (fn called %v), want an error containing %q", err, called, tt.want)
			}
		})
	}
}

func TestExactlyOneOfManyActsAndTokensIncrease(t *testing.T) {
	c, keys := redistest.New(t)
	const contenders, terms = 5, 25
	var (
		active   atomic.Int32
		mu       sync.Mutex
		tokens   []int64
		owners   = map[string]int{}
		problems []string
		enough   = make(chan struct{})
		once     sync.Once
	)
	for i := range contenders {
		l := lease.New(lease.Options{
			Client: c, Keys: keys, Name: "cron", Owner: fmt.Sprintf("host:%d:x", i),
			TTL: 2 * time.Second, RenewEvery: 20 * time.Millisecond,
		})
		runLease(t, l, func(ctx context.Context, token int64) error {
			if n := active.Add(1); n != 1 {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%d holders acting at once", n))
				mu.Unlock()
			}
			defer active.Add(-1)
			// Do some work that Redis sees: the lease must name us.
			owner, got, _, err := lease.Holder(ctx, c, keys, "cron")
			mu.Lock()
			defer mu.Unlock()
			if err != nil || owner != l.Owner() || got != token {
				problems = append(problems, fmt.Sprintf("Holder = %q %d %v while %q holds token %d", owner, got, err, l.Owner(), token))
			}
			tokens = append(tokens, token)
			owners[l.Owner()]++
			if len(tokens) == terms {
				once.Do(func() { close(enough) })
			}
			return nil
		})
	}
	waitFor(t, enough, 30*time.Second, fmt.Sprintf("%d terms", terms))
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("violations: %v", problems)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("tokens not strictly increasing: %v", tokens)
		}
	}
	if len(owners) < 2 {
		t.Fatalf("only %v ever held the lease; want it to change hands", owners)
	}
	t.Logf("%d terms across %d holders, tokens %d..%d", len(tokens), len(owners), tokens[0], tokens[len(tokens)-1])
}

func TestHolderStopsAtOnceWhenTheLeaseIsTakenAway(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(c redis.UniversalClient, key string) error
	}{
		{"key overwritten by another owner", func(c redis.UniversalClient, key string) error {
			return c.Set(context.Background(), key, "999 intruder:1:x", 300*time.Millisecond).Err()
		}},
		{"key deleted", func(c redis.UniversalClient, key string) error {
			return c.Del(context.Background(), key).Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, keys := redistest.New(t)
			const ttl, renew = 5 * time.Second, 50 * time.Millisecond
			l := lease.New(lease.Options{Client: c, Keys: keys, Name: "requeuer", TTL: ttl, RenewEvery: renew, Log: testLog(t)})
			type term struct {
				token int64
				cause error
				ended time.Time
			}
			started := make(chan int64, 10)
			ended := make(chan term, 10)
			runLease(t, l, func(ctx context.Context, token int64) error {
				started <- token
				<-ctx.Done()
				ended <- term{token, context.Cause(ctx), time.Now()}
				return nil
			})
			first := waitFor(t, started, 5*time.Second, "the first term")
			tampered := time.Now()
			if err := tt.tamper(c, keys.Key("lease", "requeuer")); err != nil {
				t.Fatal(err)
			}
			end := waitFor(t, ended, ttl, "the term to end")
			if !errors.Is(end.cause, lease.ErrLost) || end.token != first {
				t.Fatalf("term %d ended with %v, want term %d to end with ErrLost", end.token, end.cause, first)
			}
			if took := end.ended.Sub(tampered); took > renew+time.Second {
				t.Fatalf("holder stopped %v after losing the lease, want within a renewal (%v)", took, renew)
			}
			// The lease is free again (expired or deleted): a new term starts
			// with a larger token.
			second := waitFor(t, started, 5*time.Second, "the second term")
			if second <= first {
				t.Fatalf("second token %d, want > %d", second, first)
			}
		})
	}
}

func TestHolderStopsBeforeTTLWhenRedisDies(t *testing.T) {
	srv := redistest.StartServer(t)
	c, err := redisconn.New(redisconn.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	const ttl, renew = time.Second, 100 * time.Millisecond
	keys := redisconn.NewKeys("lease-test")
	l := lease.New(lease.Options{Client: c, Keys: keys, Name: "cron", TTL: ttl, RenewEvery: renew, Log: testLog(t)})
	started := make(chan int64, 1)
	type term struct {
		cause error
		at    time.Time
	}
	ended := make(chan term, 1)
	renewed := make(chan struct{})
	var renewedOnce sync.Once
	runLease(t, l, func(ctx context.Context, token int64) error {
		started <- token
		// Act until told to stop; watch the lease being renewed meanwhile.
		tick := time.NewTicker(renew)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				ended <- term{context.Cause(ctx), time.Now()}
				return nil
			case <-tick.C:
				if _, _, left, err := lease.Holder(ctx, c, keys, "cron"); err == nil && left > ttl-renew {
					renewedOnce.Do(func() { close(renewed) })
				}
			}
		}
	})
	waitFor(t, started, 5*time.Second, "the term")
	// Let at least one renewal happen so the kill lands mid-term.
	waitFor(t, renewed, 5*time.Second, "a renewal")
	killed := time.Now()
	srv.Kill()
	end := waitFor(t, ended, 3*ttl, "the holder to stop")
	stoppedAfter := end.at.Sub(killed)
	t.Logf("holder stopped %v after Redis died (ttl %v, margin %v)", stoppedAfter, ttl, ttl/5)
	if !errors.Is(end.cause, lease.ErrTrustExpired) {
		t.Fatalf("term ended with %v, want ErrTrustExpired", end.cause)
	}
	// The last successful renewal was before the kill, so the key expires no
	// earlier than killed - renew + ttl; the holder must have stopped by then.
	if stoppedAfter >= ttl-renew {
		t.Fatalf("holder acted %v after Redis died, want less than ttl - renew interval (%v)", stoppedAfter, ttl-renew)
	}
}

func TestCrashedHolderIsReplacedWithinTTLPlusRenewEvery(t *testing.T) {
	shared, keys := redistest.New(t)
	const ttl, renew = time.Second, 100 * time.Millisecond
	// The holder that will crash has its own connection, closed at the crash
	// so that it cannot release the lease.
	crashing, err := redisconn.New(redisconn.Options{URL: redistest.URL()})
	if err != nil {
		t.Fatal(err)
	}
	type term struct {
		owner string
		token int64
		at    time.Time
	}
	starts := make(chan term, 10)
	act := func(owner string) func(context.Context, int64) error {
		return func(ctx context.Context, token int64) error {
			starts <- term{owner, token, time.Now()}
			<-ctx.Done()
			return nil
		}
	}
	a := lease.New(lease.Options{Client: crashing, Keys: keys, Name: "cron", Owner: "a:1:x", TTL: ttl, RenewEvery: renew, Log: testLog(t)})
	stopA := runLease(t, a, act("a"))
	first := waitFor(t, starts, 5*time.Second, "a's term")
	if first.owner != "a" {
		t.Fatalf("first holder %q, want a", first.owner)
	}
	b := lease.New(lease.Options{Client: shared, Keys: keys, Name: "cron", Owner: "b:2:y", TTL: ttl, RenewEvery: renew, Log: testLog(t)})
	runLease(t, b, act("b"))

	crashed := time.Now()
	_ = crashing.Close() // renewals and the release now fail, as after a crash
	stopA()
	second := waitFor(t, starts, 3*(ttl+renew), "b to take over")
	takeover := second.at.Sub(crashed)
	t.Logf("takeover after a crash: %v (ttl %v + renew every %v = %v)", takeover, ttl, renew, ttl+renew)
	if second.owner != "b" || second.token <= first.token {
		t.Fatalf("after the crash %q holds token %d, want b with a token above %d", second.owner, second.token, first.token)
	}
	if takeover > ttl+renew+200*time.Millisecond {
		t.Fatalf("takeover took %v, want at most ttl + renew interval (%v) plus scheduling slack", takeover, ttl+renew)
	}
}

func TestShutdownReleasesAndHolderReportsIt(t *testing.T) {
	c, keys := redistest.New(t)
	ctx := context.Background()
	if owner, token, ttl, err := lease.Holder(ctx, c, keys, "cron"); err != nil || owner != "" || token != 0 || ttl != 0 {
		t.Fatalf("Holder of a free lease = %q %d %v %v, want nothing", owner, token, ttl, err)
	}
	const ttl = 3 * time.Second
	l := lease.New(lease.Options{Client: c, Keys: keys, Name: "cron", TTL: ttl})
	started := make(chan int64, 1)
	stop := runLease(t, l, func(ctx context.Context, token int64) error {
		started <- token
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), context.Canceled) {
			return fmt.Errorf("cause %v, want context.Canceled", context.Cause(ctx))
		}
		return nil
	})
	token := waitFor(t, started, 5*time.Second, "the term")
	owner, got, left, err := lease.Holder(ctx, c, keys, "cron")
	if err != nil || owner != l.Owner() || got != token || left <= 0 || left > ttl {
		t.Fatalf("Holder = %q %d %v %v, want %q %d with 0 < ttl <= %v", owner, got, left, err, l.Owner(), token, ttl)
	}
	stop()
	// Released on shutdown, not left to expire.
	if owner, _, _, err := lease.Holder(ctx, c, keys, "cron"); err != nil || owner != "" {
		t.Fatalf("Holder after shutdown = %q %v, want nobody", owner, err)
	}
}

func TestAFailingFunctionEndsTheTermAndTheLeaseIsCampaignedAgain(t *testing.T) {
	c, keys := redistest.New(t)
	l := lease.New(lease.Options{Client: c, Keys: keys, Name: "cron", TTL: 5 * time.Second, RenewEvery: 20 * time.Millisecond})
	tokens := make(chan int64, 10)
	var calls atomic.Int32
	runLease(t, l, func(ctx context.Context, token int64) error {
		tokens <- token
		if calls.Add(1) == 1 {
			return errors.New("task failed")
		}
		<-ctx.Done()
		return nil
	})
	first := waitFor(t, tokens, 5*time.Second, "the first term")
	// Released at once, so the next term starts after one campaign period,
	// far sooner than the 5s TTL.
	second := waitFor(t, tokens, 2*time.Second, "the second term")
	if second <= first {
		t.Fatalf("second token %d, want > %d", second, first)
	}
}

func TestTokensKeepIncreasingAfterRedisLosesTheCounter(t *testing.T) {
	c, keys := redistest.New(t)
	l := lease.New(lease.Options{Client: c, Keys: keys, Name: "cron", TTL: 5 * time.Second, RenewEvery: 20 * time.Millisecond})
	tokens := make(chan int64, 10)
	var calls atomic.Int32
	runLease(t, l, func(ctx context.Context, token int64) error {
		tokens <- token
		if calls.Add(1) == 1 {
			// Redis loses everything while the first term runs.
			return redistest.DeleteAll(ctx, c, keys)
		}
		<-ctx.Done()
		return nil
	})
	first := waitFor(t, tokens, 5*time.Second, "the first term")
	second := waitFor(t, tokens, 5*time.Second, "the term after the loss")
	if second <= first {
		t.Fatalf("token after losing the counter %d, want > %d", second, first)
	}
}
