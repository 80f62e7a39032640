package worker_test

import (
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/worker"
)

// BenchmarkWorkerThroughput measures the worker end to end on SQLite: b.N
// messages already in the stream, a Handler that takes no time, until every
// one is recorded Sent. Run with -benchtime=2000x or more.
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, bc := range []struct {
		name    string
		domains []string
	}{
		{"one_domain", []string{"a.test"}},
		{"ten_domains", []string{"a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test", "h.test", "i.test", "j.test"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, 10)
			acc := e.insert(b, b.N, bc.domains...)
			e.enqueue(b, acc)
			w, err := worker.New(e.workerOptions(&recorder{}, time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			began := time.Now()
			stop := start(b, w)
			waitFor(b, 5*time.Minute, "all sent", func() bool { return e.countStatus(b, acc, store.StatusSent) == len(acc) })
			elapsed := time.Since(began)
			stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
		})
	}
}
