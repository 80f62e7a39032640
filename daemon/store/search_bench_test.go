package store_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// benchMessages is how many messages BenchmarkConsoleQueries stores:
// POSTAL_BENCH_MESSAGES, default 1,000,000.
func benchMessages(b *testing.B) int {
	if v := os.Getenv("POSTAL_BENCH_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("POSTAL_BENCH_MESSAGES=%q is not a positive count", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkConsoleQueries measures what one console refresh and one page of
// the Messages screen cost with a million messages stored, on SQLite and
// PostgreSQL: the first and a deep keyset page, each filter the screen
// offers, the held preset, the queue shape and the hour of per-minute
// throughput. The database is filled once per backend (outside the timer).
func BenchmarkConsoleQueries(b *testing.B) {
	n := benchMessages(b)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s := be.Open(b)
			fx := storetest.NewFixture(b, s, "example.com", "")
			end := time.Now()
			fillStart := time.Now()
			if err := s.FillMessages(ctx, fx.Server.ID, n, end); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: filled %d messages in %s", be.Name, n, time.Since(fillStart).Round(time.Millisecond))
			deep, err := s.SearchMessages(ctx, store.MessageFilter{Before: int64(n / 2), Limit: 1})
			if err != nil || len(deep.Messages) != 1 {
				b.Fatalf("deep cursor: %v", err)
			}
			page := func(f store.MessageFilter) func(b *testing.B) {
				return func(b *testing.B) {
					for b.Loop() {
						p, err := s.SearchMessages(ctx, f)
						if err != nil {
							b.Fatal(err)
						}
						if len(p.Messages) == 0 {
							b.Fatal("empty page")
						}
					}
				}
			}
			b.Run("page_first", page(store.MessageFilter{}))
			b.Run("page_deep", page(store.MessageFilter{Before: int64(n / 2)}))
			b.Run("server_status", page(store.MessageFilter{ServerID: fx.Server.ID, Status: store.StatusHardFail}))
			b.Run("status_deep", page(store.MessageFilter{Status: store.StatusSoftFail, Before: int64(n / 2)}))
			b.Run("held", page(store.MessageFilter{Held: true}))
			b.Run("to", page(store.MessageFilter{To: "user7@dest7.example"}))
			b.Run("subject", page(store.MessageFilter{Subject: "Invoice 99"}))
			// The worst case: a filter no index serves that matches one
			// message walks the whole table.
			b.Run("subject_rare", page(store.MessageFilter{Subject: "Invoice " + strconv.Itoa(n)}))
			// An hour in the middle of the stored span (one message every 100 ms).
			mid := end.Add(-time.Duration(n/2) * 100 * time.Millisecond)
			b.Run("time_range", page(store.MessageFilter{Since: mid.Add(-time.Hour), Until: mid}))
			b.Run("shape", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.QueueShape(ctx, end, 50); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("throughput_hour", func(b *testing.B) {
				start := end.Truncate(time.Minute).Add(-59 * time.Minute)
				for b.Loop() {
					if _, err := s.Throughput(ctx, 0, start, time.Minute, 60); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
