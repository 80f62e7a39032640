package smtpserver

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors, named as Postal names
// its own where it has one.
type metrics struct {
	connections    prometheus.Counter
	open           prometheus.Gauge
	refused        *prometheus.CounterVec
	tlsConnections prometheus.Counter
	clientErrors   *prometheus.CounterVec
	messages       *prometheus.CounterVec
	acceptSeconds  prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{Name: "postal_smtp_server_connections_total",
			Help: "Connections accepted by the SMTP server, including refused ones."}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postal_smtp_server_open_connections",
			Help: "Client connections open now."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_smtp_server_refused_connections_total",
			Help: "Connections refused before the greeting, by reason."}, []string{"reason"}),
		tlsConnections: prometheus.NewCounter(prometheus.CounterOpts{Name: "postal_smtp_server_tls_connections_total",
			Help: "Connections that completed STARTTLS."}),
		clientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_smtp_server_client_errors",
			Help: "Refusals and errors sent to clients, by error."}, []string{"error"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postal_smtp_server_messages_total",
			Help: "Messages (one per recipient) accepted and stored, by type and TLS."}, []string{"type", "tls"}),
		acceptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "postal_smtp_server_accept_seconds",
			Help:    "Time from the end of the data to the durable commit of a message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.connections, m.open, m.refused, m.tlsConnections, m.clientErrors, m.messages, m.acceptSeconds} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
