package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// BenchmarkCommitPath measures the two hot-path transactions per message,
// on each backend: storing a batch of 64 accepted messages
// (InsertSubmissions, intake's group commit) and recording a batch of 64
// Sent outcomes (CommitOutcomes, the completer). Claims happen outside the
// timer. It reports messages per second for each.
func BenchmarkCommitPath(b *testing.B) {
	const batch = 64
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s := be.Open(b)
			fx := storetest.NewFixture(b, s, "example.com", "")
			var accepted, recorded time.Duration
			for i := 0; i < b.N; i++ {
				rows, took := queueAndClaim(ctx, b, s, fx, batch)
				accepted += took
				outs := make([]store.Outcome, len(rows))
				for j, q := range rows {
					outs[j] = store.Sent(q, store.NewDelivery{Output: "250 OK"})
				}
				t0 := time.Now()
				if _, err := s.CommitOutcomes(ctx, outs); err != nil {
					b.Fatal(err)
				}
				recorded += time.Since(t0)
			}
			b.ReportMetric(float64(b.N*batch)/accepted.Seconds(), "accepted/s")
			b.ReportMetric(float64(b.N*batch)/recorded.Seconds(), "recorded/s")
		})
	}
}

// BenchmarkCommitOutcomesWithWebhooks records batches of hotBatch Sent
// outcomes that each carry a MessageSent webhook request (a server with a
// webhook: the worker's common batch), on each backend. Only the commit is
// timed (ns/op is one batch); queueing and claiming the rows are not.
func BenchmarkCommitOutcomesWithWebhooks(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s := be.Open(b)
			fx := storetest.NewFixture(b, s, "example.com", "")
			for b.Loop() {
				b.StopTimer()
				rows, _ := queueAndClaim(ctx, b, s, fx, hotBatch)
				outs := make([]store.Outcome, len(rows))
				for j, q := range rows {
					outs[j] = store.Sent(q, store.NewDelivery{Output: "250 2.0.0 Ok: queued as 4Xyz", LogID: "ABCD1234", Time: 0.05}).With(
						store.Effects{Webhooks: []store.NewWebhookRequest{{ServerID: fx.Server.ID, MessageID: q.MessageID,
							URL: "https://hooks.test/", Event: "MessageSent", Payload: `{"status":"Sent"}`}}})
				}
				b.StartTimer()
				c, err := s.CommitOutcomes(ctx, outs)
				if err != nil || len(c.Webhooks) != hotBatch {
					b.Fatalf("commit: %d webhooks, %v", len(c.Webhooks), err)
				}
			}
		})
	}
}

// queueAndClaim stores n accepted outgoing messages (one submission, as
// intake's group commit) and claims their queued rows; it returns the rows
// and how long the store took.
func queueAndClaim(ctx context.Context, b *testing.B, s *store.Store, fx storetest.Fixture, n int) ([]*store.QueuedMessage, time.Duration) {
	b.Helper()
	var msgs []store.NewMessage
	for j := range n {
		msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing,
			RcptTo: fmt.Sprintf("r%d@dest.test", j), MailFrom: "a@example.com", Queue: true, QueueDomain: "dest.test"})
	}
	t0 := time.Now()
	acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nbody"), Messages: msgs}})
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(t0)
	ids := make([]int64, len(acc[0]))
	for j, a := range acc[0] {
		ids[j] = a.QueuedID
	}
	now := time.Now()
	rows, err := s.ClaimQueued(ctx, ids, "w", now, now.Add(time.Hour))
	if err != nil || len(rows) != n {
		b.Fatalf("claim: %d, %v", len(rows), err)
	}
	return rows, took
}
