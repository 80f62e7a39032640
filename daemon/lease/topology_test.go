package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

// The lease works on a Redis Cluster and behind Sentinel: one of two
// contenders holds it, Holder reports it, and on shutdown the other takes
// it over with a larger fencing token.
func TestLeaseOnClusterAndSentinel(t *testing.T) {
	for _, tc := range redistest.Topologies() {
		t.Run(tc.Name, func(t *testing.T) {
			c, keys := redistest.NewOn(t, tc.Start(t))
			ctx := context.Background()
			const ttl = 3 * time.Second
			terms := make(chan int64, 2)
			hold := func(ctx context.Context, token int64) error {
				terms <- token
				<-ctx.Done()
				return nil
			}
			a := lease.New(lease.Options{Client: c, Keys: keys, Name: "requeuer", Owner: "a", TTL: ttl})
			stopA := runLease(t, a, hold)
			first := waitFor(t, terms, 5*time.Second, "a's term")
			b := lease.New(lease.Options{Client: c, Keys: keys, Name: "requeuer", Owner: "b", TTL: ttl})
			runLease(t, b, hold)
			owner, token, left, err := lease.Holder(ctx, c, keys, "requeuer")
			if err != nil || owner != "a" || token != first || left <= 0 || left > ttl {
				t.Fatalf("Holder = %q %d %v %v; want a %d", owner, token, left, err, first)
			}
			stopA()
			second := waitFor(t, terms, 10*time.Second, "b's term after a stopped")
			if second <= first {
				t.Fatalf("b's token %d, want more than a's %d", second, first)
			}
			if owner, _, _, err := lease.Holder(ctx, c, keys, "requeuer"); err != nil || owner != "b" {
				t.Fatalf("Holder after a stopped = %q %v; want b", owner, err)
			}
		})
	}
}
