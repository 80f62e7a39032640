package store_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// hotBatch is the batch size of BenchmarkHotPaths: a busy intake group
// commit or worker batch.
const hotBatch = 20

// BenchmarkHotPaths measures one batch of hotBatch messages (2 KB bodies,
// one recipient each) through each SQL path of a relayed message, on SQLite
// and PostgreSQL: intake (InsertSubmissions), claim (ClaimQueued), load
// (Messages and RawMessages, as the outbound processor reads them) and
// outcome (CommitOutcomes of Sent outcomes). One op is one batch; the
// ns/op of each path divided by hotBatch is its cost per message.
func BenchmarkHotPaths(b *testing.B) {
	body := append([]byte("Subject: bench\r\nFrom: a@example.com\r\n\r\n"), bytes.Repeat([]byte("x"), 2000)...)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s := be.Open(b)
			fx := storetest.NewFixture(b, s, "example.com", "")
			subs := func() []store.Submission {
				out := make([]store.Submission, hotBatch)
				for i := range out {
					out[i] = store.Submission{Raw: body, Messages: []store.NewMessage{{ServerID: fx.Server.ID,
						Scope: store.ScopeOutgoing, RcptTo: "rcpt" + strconv.Itoa(i) + "@dest.test", MailFrom: "a@example.com",
						Subject: "bench", DomainID: fx.Domain.ID, Queue: true, QueueDomain: "dest.test"}}}
				}
				return out
			}
			// intake fills the queue for the next steps; each step below
			// works on batches this one stored.
			var stored [][]store.Accepted
			b.Run("intake", func(b *testing.B) {
				for b.Loop() {
					acc, err := s.InsertSubmissions(ctx, subs())
					if err != nil {
						b.Fatal(err)
					}
					stored = append(stored, acc...)
				}
			})
			ids := func(n int) ([]int64, []int64) {
				q, m := make([]int64, 0, hotBatch), make([]int64, 0, hotBatch)
				for _, a := range stored[n*hotBatch : (n+1)*hotBatch] {
					q, m = append(q, a[0].QueuedID), append(m, a[0].MessageID)
				}
				return q, m
			}
			batches := len(stored) / hotBatch
			var claimed [][]*store.QueuedMessage
			b.Run("claim", func(b *testing.B) {
				i := 0
				for b.Loop() {
					if i == batches {
						b.Skip("intake stored too few batches for this many iterations")
					}
					qids, _ := ids(i)
					now := time.Now()
					rows, err := s.ClaimQueued(ctx, qids, "bench-"+strconv.Itoa(i), now, now.Add(time.Hour))
					if err != nil || len(rows) != hotBatch {
						b.Fatalf("claim: %d rows, %v", len(rows), err)
					}
					claimed = append(claimed, rows)
					i++
				}
			})
			b.Run("load", func(b *testing.B) {
				i := 0
				for b.Loop() {
					_, mids := ids(i % batches)
					msgs, err := s.Messages(ctx, mids)
					if err != nil || len(msgs) != hotBatch {
						b.Fatalf("messages: %d, %v", len(msgs), err)
					}
					raw := make([]int64, len(msgs))
					for j, m := range msgs {
						raw[j] = m.RawMessageID
					}
					bodies, err := s.RawMessages(ctx, raw)
					if err != nil || len(bodies) != hotBatch {
						b.Fatalf("raw messages: %d, %v", len(bodies), err)
					}
					i++
				}
			})
			b.Run("outcome", func(b *testing.B) {
				i := 0
				for b.Loop() {
					if i == len(claimed) {
						b.Skip("claim took too few batches for this many iterations")
					}
					outs := make([]store.Outcome, 0, hotBatch)
					for _, q := range claimed[i] {
						outs = append(outs, store.Sent(q, store.NewDelivery{Output: "250 2.0.0 Ok: queued as 4Xyz", LogID: "ABCD1234", Time: 0.05}))
					}
					c, err := s.CommitOutcomes(ctx, outs)
					if err != nil {
						b.Fatal(err)
					}
					for j, ok := range c.Applied {
						if !ok {
							b.Fatalf("outcome %d not applied: %v", j, c.Failed[j])
						}
					}
					i++
				}
			})
		})
	}
}
