package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

func TestQueueShapeByDomainAndAge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test")
		var msgs []store.NewMessage
		msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "x@other.test",
			MailFrom: "a@example.com", Queue: true, QueueDomain: "other.test"})
		if _, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: msgs}}); err != nil {
			t.Fatal(err)
		}
		// Seen from 30 minutes later, every row is in the 20-40m bucket.
		sh, err := s.QueueShape(ctx, time.Now().Add(30*time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if sh.Total.Total != 4 || sh.Total.Counts[3] != 4 || sum(sh.Total.Counts) != 4 {
			t.Fatalf("total = %+v, want 4 in bucket 3", sh.Total)
		}
		if len(sh.Domains) != 2 || sh.Domains[0].Domain != "dest.test" || sh.Domains[0].Total != 3 || sh.Domains[1].Domain != "other.test" {
			t.Fatalf("domains = %+v", sh.Domains)
		}
		// Seen now, everything is younger than 5 minutes; limit keeps the biggest.
		sh, err = s.QueueShape(ctx, time.Now(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(sh.Domains) != 1 || sh.Domains[0].Counts[0] != 3 || sh.Total.Counts[0] != 4 {
			t.Fatalf("shape now = %+v", sh)
		}
		if _, err := s.QueueShape(ctx, time.Now(), 0); err == nil {
			t.Fatal("limit 0 accepted")
		}
	})
}

func TestThroughputBucketsMessagesAndOutcomes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test")
		finish(t, s, acc[0], store.StatusSent, false)
		finish(t, s, acc[1], store.StatusHardFail, false)
		start := time.Now().Add(-59 * time.Minute).Truncate(time.Minute)
		for _, server := range []int64{0, fx.Server.ID} {
			sr, err := s.Throughput(ctx, server, start, time.Minute, 61)
			if err != nil {
				t.Fatal(err)
			}
			if sum(sr.Accepted) != 3 || sum(sr.Sent) != 1 || sum(sr.HardFail) != 1 || sum(sr.SoftFail) != 0 {
				t.Fatalf("server %d: series = %+v", server, sr)
			}
			// Everything happened in the last minute or so: the early buckets are empty.
			if sum(sr.Accepted[:50]) != 0 {
				t.Fatalf("old buckets counted: %v", sr.Accepted)
			}
		}
		other, err := s.Throughput(ctx, fx.Server.ID+99, start, time.Minute, 61)
		if err != nil || sum(other.Accepted) != 0 || sum(other.Sent) != 0 {
			t.Fatalf("other server: %+v, %v", other, err)
		}
		if _, err := s.Throughput(ctx, 0, start, time.Millisecond, 10); err == nil {
			t.Fatal("sub-second step accepted")
		}
		reqs, err := s.FailedWebhookRequests(ctx, 10)
		if err != nil || !slices.Equal(reqs, []*store.WebhookRequest{}) {
			t.Fatalf("failed webhook requests = %v, %v", reqs, err)
		}
	})
}
