package webhookworker

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postalgo/postal/daemon/webhook"
)

// metrics are the webhook worker's Prometheus series.
type metrics struct {
	attempts *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	settled  *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	parked   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_webhook_attempts_total",
			Help: "Webhook attempts by result (ok, http_error, redirect, timeout, dns, connect, tls, invalid)."}, []string{"result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postal_webhook_attempt_seconds",
			Help: "Time one webhook attempt took, by result.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 12)}, []string{"result"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_webhook_requests_settled_total",
			Help: "Webhook requests after an attempt was recorded: delivered, retried or given_up."}, []string{"outcome"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_webhook_entries_skipped_total",
			Help: "Stream entries that carried no work, by reason (gone, locked, locked_redelivered, not_due, raced, lost_lock)."},
			[]string{"reason"}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{Name: "postal_webhook_parked_total",
			Help: "Requests for a slow receiver handed back without an attempt, to be tried later."}),
	}
	for _, o := range webhook.Outcomes() {
		m.attempts.WithLabelValues(string(o))
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.attempts, m.seconds, m.settled, m.skipped, m.parked} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("webhookworker: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
