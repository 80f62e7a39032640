package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

// The sliding window works on a Redis Cluster and behind Sentinel:
// Acquire refuses past Max, Release gives an event back, Record and
// Exceeded agree, and events leave with the window.
func TestWindowOnClusterAndSentinel(t *testing.T) {
	for _, tc := range redistest.Topologies() {
		t.Run(tc.Name, func(t *testing.T) {
			c, keys := redistest.NewOn(t, tc.Start(t))
			ctx := context.Background()
			clk := &clock{t: time.Unix(1_800_000_000, 0)}
			w, err := ratelimit.New(ratelimit.Options{Client: c, Keys: keys, Name: "auth", Max: 2, Window: time.Minute, Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			tok, ok, err := w.Acquire(ctx, "192.0.2.1")
			if err != nil || !ok {
				t.Fatalf("first Acquire = %v, %v", ok, err)
			}
			if err := w.Record(ctx, "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := w.Acquire(ctx, "192.0.2.1"); err != nil || ok {
				t.Fatalf("Acquire past Max = %v, %v; want refused", ok, err)
			}
			if x, err := w.Exceeded(ctx, "192.0.2.1"); err != nil || !x {
				t.Fatalf("Exceeded = %v, %v; want true", x, err)
			}
			if err := w.Release(ctx, "192.0.2.1", tok); err != nil {
				t.Fatal(err)
			}
			if x, err := w.Exceeded(ctx, "192.0.2.1"); err != nil || x {
				t.Fatalf("Exceeded after Release = %v, %v; want false", x, err)
			}
			if err := w.Record(ctx, "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			clk.t = clk.t.Add(2 * time.Minute)
			if x, err := w.Exceeded(ctx, "192.0.2.1"); err != nil || x {
				t.Fatalf("Exceeded after the window = %v, %v; want false", x, err)
			}
		})
	}
}
