package outbound

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	outcomes *prometheus.CounterVec
	latency  prometheus.Histogram
	mxCache  *prometheus.CounterVec
	bounces  prometheus.Counter
	journal  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postal_outbound_messages_total",
			Help: "Outgoing delivery outcomes by server (ORG/SERVER) and status (sent, softfail, hardfail, held).",
		}, []string{"server", "status"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "postal_outbound_send_seconds",
			Help:    "Time to send one message to one SMTP server, waiting for a pooled connection included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}),
		mxCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postal_outbound_mx_cache_total",
			Help: "MX lookups answered from the cache (hit) or by DNS (miss).",
		}, []string{"result"}),
		bounces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postal_outbound_bounces_sent_total",
			Help: "Delivery status notifications submitted to senders of hard-failed messages.",
		}),
		journal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postal_outbound_sent_journal_total",
			Help: "Sent-journal use: records written (recorded) or not (record_failed), messages found sent by an earlier claim and not sent again (reused), lookups that failed (lookup_failed).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.outcomes, m.latency, m.mxCache, m.bounces, m.journal} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("outbound: register metrics: %w", err)
		}
	}
	return m, nil
}
