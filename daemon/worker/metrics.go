package worker

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus series, labelled by stream kind.
type metrics struct {
	processed      *prometheus.CounterVec
	acked          *prometheus.CounterVec
	retried        *prometheus.CounterVec
	dead           *prometheus.CounterVec
	skipped        *prometheus.CounterVec
	fallback       *prometheus.CounterVec
	adopted        *prometheus.CounterVec
	batchSize      *prometheus.HistogramVec
	handlerSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_processed_total",
			Help: "Queued messages whose outcome was recorded."}, []string{"kind"}),
		acked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_acked_total",
			Help: "Stream entries acknowledged."}, []string{"kind"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_retried_total",
			Help: "Recorded outcomes that scheduled a retry."}, []string{"kind"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_dead_total",
			Help: "Entries given up on after too many deliveries (dead letters)."}, []string{"kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_skipped_total",
			Help: "Entries that carried no work for this worker, by reason (gone, locked, locked_redelivered, not_due, raced, refused)."},
			[]string{"kind", "reason"}),
		fallback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_outcome_fallbacks_total",
			Help: "Outcomes the database refused, recorded instead as failed with the reason (Sent stays Sent)."}, []string{"kind"}),
		adopted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_worker_adopted_total",
			Help: "Entries taken over from consumers of worker processes without a heartbeat."}, []string{"kind"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postal_worker_batch_size",
			Help: "Messages per Handler call (one destination).", Buckets: prometheus.ExponentialBuckets(1, 2, 9)}, []string{"kind"}),
		handlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postal_worker_handler_seconds",
			Help: "Time one Handler call took.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.processed, m.acked, m.retried, m.dead, m.skipped, m.fallback, m.adopted, m.batchSize, m.handlerSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("worker: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
