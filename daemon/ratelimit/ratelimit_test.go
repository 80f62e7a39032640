package ratelimit_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSlidingWindowSharedAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	rdb, keys := redistest.New(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	// Two Windows on the same Redis stand for two smtp-server processes.
	newWindow := func(name string) *ratelimit.Window {
		w, err := ratelimit.New(ratelimit.Options{Client: rdb, Keys: keys, Name: name, Max: 3, Window: time.Minute, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	a, b, other := newWindow("auth"), newWindow("auth"), newWindow("other")
	exceeded := func(w *ratelimit.Window, subject string) bool {
		t.Helper()
		x, err := w.Exceeded(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	record := func(w *ratelimit.Window, subject string) {
		t.Helper()
		if err := w.Record(ctx, subject); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		do      func()
		subject string
		want    bool
	}{
		{"fresh", func() {}, "192.0.2.1", false},
		{"two events", func() { record(a, "192.0.2.1"); clk.t = clk.t.Add(10 * time.Second); record(b, "192.0.2.1") }, "192.0.2.1", false},
		{"third event in the other process", func() { clk.t = clk.t.Add(10 * time.Second); record(b, "192.0.2.1") }, "192.0.2.1", true},
		{"another subject is apart", func() {}, "2001:db8::1", false},
		{"another limit is apart", func() {}, "", false},
		{"first event leaves the window", func() { clk.t = clk.t.Add(41 * time.Second) }, "192.0.2.1", false},
		{"a new one brings it back", func() { record(a, "192.0.2.1") }, "192.0.2.1", true},
		{"all leave", func() { clk.t = clk.t.Add(time.Hour) }, "192.0.2.1", false},
	}
	for _, s := range steps {
		s.do()
		var got bool
		if s.subject == "" {
			got = exceeded(other, "192.0.2.1")
		} else {
			got = exceeded(a, s.subject) // both processes agree
			if b := exceeded(b, s.subject); b != got {
				t.Fatalf("%s: the two processes disagree (%v, %v)", s.name, got, b)
			}
		}
		if got != s.want {
			t.Fatalf("%s: exceeded = %v, want %v", s.name, got, s.want)
		}
	}
}

// A subject's set never holds more than Max events and expires with the
// window, so a flood costs bounded memory and a quiet subject disappears.
func TestRecordBoundsMemory(t *testing.T) {
	ctx := context.Background()
	rdb, keys := redistest.New(t)
	w, err := ratelimit.New(ratelimit.Options{Client: rdb, Keys: keys, Name: "auth", Max: 3, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := w.Record(ctx, "192.0.2.9"); err != nil {
			t.Fatal(err)
		}
	}
	key := keys.Key("ratelimit", "auth", "192.0.2.9")
	if n := rdb.ZCard(ctx, key).Val(); n != 3 {
		t.Fatalf("set holds %d events, want 3", n)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl = %v, want (0, 1m]", ttl)
	}
	if x, err := w.Exceeded(ctx, "192.0.2.9"); err != nil || !x {
		t.Fatalf("exceeded = %v, %v", x, err)
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	rdb, err := redisconn.New(redisconn.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	w, err := ratelimit.New(ratelimit.Options{Client: rdb, Keys: redisconn.NewKeys("rl"), Name: "auth", Max: 1, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := w.Record(ctx, "x"); err == nil || !strings.HasPrefix(err.Error(), "ratelimit: auth: record: ") {
		t.Fatalf("Record with Redis down = %v", err)
	}
	if _, err := w.Exceeded(ctx, "x"); err == nil || !strings.HasPrefix(err.Error(), "ratelimit: auth: count: ") {
		t.Fatalf("Exceeded with Redis down = %v", err)
	}
	if _, ok, err := w.Acquire(ctx, "x"); ok || err == nil || !strings.HasPrefix(err.Error(), "ratelimit: auth: acquire: ") {
		t.Fatalf("Acquire with Redis down = %v, %v", ok, err)
	}
	if err := w.Release(ctx, "x", "t"); err == nil || !strings.HasPrefix(err.Error(), "ratelimit: auth: release: ") {
		t.Fatalf("Release with Redis down = %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	rdb, keys := redistest.New(t)
	ok := ratelimit.Options{Client: rdb, Keys: keys, Name: "auth", Max: 1, Window: time.Second}
	tests := []struct {
		name string
		edit func(*ratelimit.Options)
		want string
	}{
		{"no client", func(o *ratelimit.Options) { o.Client = nil }, "nil Redis client"},
		{"no name", func(o *ratelimit.Options) { o.Name = "" }, "empty name"},
		{"zero max", func(o *ratelimit.Options) { o.Max = 0 }, "max 0"},
		{"zero window", func(o *ratelimit.Options) { o.Window = 0 }, "window 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			if _, err := ratelimit.New(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := ratelimit.New(ok); err != nil {
		t.Fatal(err)
	}
}

// Fifty concurrent Acquires of a subject with room for five: five succeed
// (checking and counting is one step), Release gives a place back, and
// places come back as events leave the window.
func TestAcquireChecksAndCountsInOneStep(t *testing.T) {
	ctx := context.Background()
	rdb, keys := redistest.New(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk.t }
	advance := func(d time.Duration) { mu.Lock(); clk.t = clk.t.Add(d); mu.Unlock() }
	// Two Windows on one Redis stand for two processes.
	ws := make([]*ratelimit.Window, 2)
	for i := range ws {
		w, err := ratelimit.New(ratelimit.Options{Client: rdb, Keys: keys, Name: "auth", Max: 5, Window: time.Minute, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	const subject = "2001:db8::/64"
	var wg sync.WaitGroup
	var granted atomic.Int32
	tokens := make(chan string, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, ok, err := ws[i%2].Acquire(ctx, subject)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				granted.Add(1)
				tokens <- tok
			}
		}()
	}
	wg.Wait()
	close(tokens)
	if g := granted.Load(); g != 5 {
		t.Fatalf("%d of 50 concurrent Acquires succeeded, want 5", g)
	}
	if x, err := ws[0].Exceeded(ctx, subject); err != nil || !x {
		t.Fatalf("Exceeded after 5 = %v, %v", x, err)
	}
	acquire := func(want bool) {
		t.Helper()
		if _, ok, err := ws[1].Acquire(ctx, subject); err != nil || ok != want {
			t.Fatalf("Acquire = %v, %v; want %v", ok, err, want)
		}
	}
	acquire(false)
	if err := ws[1].Release(ctx, subject, <-tokens); err != nil {
		t.Fatal(err)
	}
	acquire(true) // the released place
	acquire(false)
	advance(time.Minute)
	acquire(true) // every event left the window
	key := keys.Key("ratelimit", "auth", subject)
	if n := rdb.ZCard(ctx, key).Val(); n != 1 {
		t.Fatalf("set holds %d events after the window slid, want 1", n)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl = %v, want (0, 1m]", ttl)
	}
}
