package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// tuiIndexes are the indexes of migration 0008 (the operator console's).
var tuiIndexes = []string{"messages_by_server_status_id", "messages_by_status_id", "messages_by_rcpt_id", "messages_by_time", "deliveries_by_time"}

// BenchmarkRelayWrites measures the SQL a relayed message costs on its hot
// path, on SQLite and PostgreSQL, with 200,000 messages already stored:
// intake (InsertSubmissions, 20 single-recipient submissions per group
// commit), the claim and the Sent outcome commit. Once with every index and
// once without those of migration 0008, so their write cost shows as the
// ratio of the two (per message: ns/msg).
func BenchmarkRelayWrites(b *testing.B) {
	const batch = 20
	for _, be := range storetest.Backends() {
		for _, variant := range []string{"with_0008", "without_0008"} {
			b.Run(be.Name+"/"+variant, func(b *testing.B) {
				ctx := context.Background()
				s := be.Open(b)
				fx := storetest.NewFixture(b, s, "example.com", "")
				if err := s.FillMessages(ctx, fx.Server.ID, 200_000, time.Now()); err != nil {
					b.Fatal(err)
				}
				if variant == "without_0008" {
					for _, ix := range tuiIndexes {
						if _, err := s.DBForTest().ExecContext(ctx, "DROP INDEX "+ix); err != nil {
							b.Fatal(err)
						}
					}
				}
				raw := []byte("From: a@example.com\r\nTo: r@dest.test\r\nSubject: bench\r\n\r\n" + fmt.Sprintf("%02048d", 0) + "\r\n")
				seq := 0
				b.ResetTimer()
				for b.Loop() {
					subs := make([]store.Submission, batch)
					for i := range subs {
						seq++
						subs[i] = store.Submission{Raw: raw, Messages: []store.NewMessage{{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing,
							RcptTo: fmt.Sprintf("r%d@dest%d.test", seq, seq%50), MailFrom: "a@example.com", Queue: true, QueueDomain: "dest.test"}}}
					}
					acc, err := s.InsertSubmissions(ctx, subs)
					if err != nil {
						b.Fatal(err)
					}
					ids := make([]int64, 0, batch)
					for _, a := range acc {
						ids = append(ids, a[0].QueuedID)
					}
					now := time.Now()
					qs, err := s.ClaimQueued(ctx, ids, "bench", now, now.Add(time.Minute))
					if err != nil || len(qs) != batch {
						b.Fatalf("claim: %d of %d, %v", len(qs), batch, err)
					}
					outs := make([]store.Outcome, len(qs))
					for i, q := range qs {
						outs[i] = store.Sent(q, store.NewDelivery{Output: "250 ok"})
					}
					c, err := s.CommitOutcomes(ctx, outs)
					if err != nil {
						b.Fatal(err)
					}
					for i, ok := range c.Applied {
						if !ok {
							b.Fatalf("outcome %d not applied: %v", i, c.Failed[i])
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
			})
		}
	}
}
