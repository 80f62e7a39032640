package queue

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// counter names one of the per-kind counters.
type counter int

const (
	cEnqueued counter = iota
	cRead
	cAcked
	cRetried
	cClaimed
	cDead
	numCounters
)

// metrics are the queue's counters; a nil *metrics records nothing.
type metrics struct {
	perKind [numCounters]*prometheus.CounterVec
	moved   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	if reg == nil {
		return nil
	}
	vec := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "postal", Subsystem: "queue", Name: name, Help: help,
		}, []string{"queue"})
		return register(reg, c, log)
	}
	return &metrics{
		perKind: [numCounters]*prometheus.CounterVec{
			cEnqueued: vec("enqueued_total", "Entries added to a stream by Enqueue."),
			cRead:     vec("read_total", "Entries delivered by Read."),
			cAcked:    vec("acked_total", "Entries acknowledged."),
			cRetried:  vec("scheduled_total", "Jobs put in the retry set by Retry or Schedule."),
			cClaimed:  vec("claimed_total", "Idle entries taken over by Claim."),
			cDead:     vec("dead_total", "Entries moved to the dead stream after too many deliveries."),
		},
		moved: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "postal", Subsystem: "queue", Name: "moved_due_total",
			Help: "Retry set members moved back to their stream.",
		}), log),
	}
}

// register registers c, or returns the collector already registered under
// the same description (several queues may share one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("queue metric not registered", "err", err)
	return c
}

func (m *metrics) add(c counter, k Kind, n int) {
	if m == nil || n == 0 {
		return
	}
	m.perKind[c].WithLabelValues(string(k)).Add(float64(n))
}

func (m *metrics) addMoved(n int) {
	if m == nil || n == 0 {
		return
	}
	m.moved.Add(float64(n))
}
