package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
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
// and PostgreSQL: intake (InsertSubmissions), claim (ClaimQueued, which
// also loads each row's message, body, manual flag and suppression), load
// (Messages, RawMessages, ManualQueued and ActiveSuppressions: what the
// outbound processor reads for rows claimed without their load, and what
// it read for every row before the claim loaded them) and outcome
// (CommitOutcomes of Sent outcomes). One op is one batch; the
// ns/op of each path divided by hotBatch is its cost per message. Wall time
// is mostly the commit's fsync, which a shared disk makes noisy, so each
// path also reports the CPU it cost per op: go-µs/op for this process and,
// on PostgreSQL, pg-µs/op for the server's backends of the test database
// (read from /proc: the server must run on this machine, as in CI).
// POSTAL_BENCH_PG_SQL is run on the PostgreSQL database after migrating.
func BenchmarkHotPaths(b *testing.B) {
	body := append([]byte("Subject: bench\r\nFrom: a@example.com\r\n\r\n"), bytes.Repeat([]byte("x"), 2000)...)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s, admin := benchStore(b, be)
			if admin != nil {
				// POSTAL_BENCH_PG_SQL runs after migrating, to weigh an index
				// or a storage parameter (e.g. DROP INDEX ...; ALTER TABLE
				// messages SET (fillfactor = 80)).
				if q := os.Getenv("POSTAL_BENCH_PG_SQL"); q != "" {
					if _, err := admin.ExecContext(ctx, q); err != nil {
						b.Fatalf("POSTAL_BENCH_PG_SQL: %v", err)
					}
				}
			}
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
				defer meter(b, admin)()
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
				defer meter(b, admin)()
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
				defer meter(b, admin)()
				i := 0
				for b.Loop() {
					qids, mids := ids(i % batches)
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
					if _, err := s.ManualQueued(ctx, qids); err != nil {
						b.Fatal(err)
					}
					rcpts := make([]string, len(msgs))
					for j, m := range msgs {
						rcpts[j] = m.RcptTo
					}
					if _, err := s.ActiveSuppressions(ctx, fx.Server.ID, rcpts, time.Now()); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run("outcome", func(b *testing.B) {
				defer meter(b, admin)()
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

// meter starts measuring CPU and returns the function that reports it per
// op: this process's (go-µs/op) and, when admin is set, that of the
// PostgreSQL backends connected to admin's database (pg-µs/op).
func meter(b *testing.B, admin *sql.DB) func() {
	goStart, pgStart := processCPU(), backendCPU(b, admin)
	return func() {
		if b.N == 0 {
			return
		}
		b.ReportMetric(float64((processCPU()-goStart).Microseconds())/float64(b.N), "go-µs/op")
		if admin != nil {
			b.ReportMetric(float64((backendCPU(b, admin)-pgStart).Microseconds())/float64(b.N), "pg-µs/op")
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU sums the user and system CPU of the backends connected to
// admin's database (other than admin's own), from /proc/PID/schedstat.
func backendCPU(b *testing.B, admin *sql.DB) time.Duration {
	if admin == nil {
		return 0
	}
	rows, err := admin.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatalf("backend pids: %v", err)
	}
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		// The first field of schedstat is the time spent on a CPU, in ns.
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			continue // a backend that ended, or a server elsewhere
		}
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		total += time.Duration(ns)
	}
	return total
}

// benchStore opens be's store for a benchmark, migrated; on PostgreSQL it
// also returns an admin connection to the same database (for meter and
// set-up SQL), nil elsewhere.
func benchStore(b *testing.B, be storetest.Backend) (*store.Store, *sql.DB) {
	if be.Name != "postgres" {
		return be.Open(b), nil
	}
	ctx := context.Background()
	o := storetest.PostgresOptions(b)
	s, err := store.Open(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx, false); err != nil {
		b.Fatal(err)
	}
	admin, err := sql.Open("pgx", o.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = admin.Close() })
	return s, admin
}
