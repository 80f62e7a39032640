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
				var msgs []store.NewMessage
				for j := range batch {
					msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing,
						RcptTo: fmt.Sprintf("r%d@dest.test", j), MailFrom: "a@example.com", Queue: true, QueueDomain: "dest.test"})
				}
				t0 := time.Now()
				acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nbody"), Messages: msgs}})
				if err != nil {
					b.Fatal(err)
				}
				accepted += time.Since(t0)
				ids := make([]int64, len(acc[0]))
				for j, a := range acc[0] {
					ids[j] = a.QueuedID
				}
				now := time.Now()
				rows, err := s.ClaimQueued(ctx, ids, "w", now, now.Add(time.Hour))
				if err != nil || len(rows) != batch {
					b.Fatalf("claim: %d, %v", len(rows), err)
				}
				outs := make([]store.Outcome, len(rows))
				for j, q := range rows {
					outs[j] = store.Sent(q, store.NewDelivery{Output: "250 OK"})
				}
				t0 = time.Now()
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
