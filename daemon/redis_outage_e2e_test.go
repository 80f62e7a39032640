package daemon_test

import (
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// Redis is not on the path of acceptance: with Redis killed under SMTP
// load, the smtp-server goes on answering 250 (SQL is the record), nothing
// is refused, and once Redis returns (empty: it had no persistence) every
// accepted message is delivered exactly once without anyone stepping in,
// through the intake's dispatch and the requeuer's reconciliation.
func TestRedisOutageUnderLoadRefusesNothingAndDeliveryResumes(t *testing.T) {
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	r := &redisProc{port: freePort(t)}
	r.start(t)
	t.Cleanup(r.stop)
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
		"REQUEUER_RECONCILE_INTERVAL=1",
	}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")

	p := startPostald(t, in, r.url(), "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })

	// Load: senders submit one message per token. Phase 0 goes through
	// before the outage, phase 1 while Redis is down (it is started again
	// only once every phase-1 submission has been answered), phase 2 after.
	const senders, perPhase = 4, 20
	var (
		refused atomic.Int64
		done    [3]atomic.Int64
		mu      sync.Mutex
		errs    []string
	)
	tokens := make(chan int, 3*perPhase)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for i := 0; ; i++ {
				phase, ok := <-tokens
				if !ok {
					return
				}
				err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", "bob@dest.test", fmt.Sprintf("load-%d-%d-%d", phase, w, i))
				if err != nil {
					refused.Add(1)
					mu.Lock()
					errs = append(errs, fmt.Sprintf("phase %d: %v", phase, err))
					mu.Unlock()
				}
				done[phase].Add(1)
			}
		})
	}
	runPhase := func(phase int) {
		for range perPhase {
			tokens <- phase
		}
		waitFor(t, fmt.Sprintf("phase %d answered", phase), 60*time.Second, func() bool { return done[phase].Load() == perPhase })
	}
	runPhase(0)
	r.stop()
	killedAt := time.Now()
	waitFor(t, "/ready 503 with Redis down", 15*time.Second, func() bool { return readyStatus(in.healthPort) == 503 })
	runPhase(1)
	r.start(t)
	outage := time.Since(killedAt)
	runPhase(2)
	close(tokens)
	wg.Wait()

	if n := refused.Load(); n > 0 {
		t.Fatalf("%d submissions refused or failed (Redis down %s); first: %s", n, outage.Round(time.Millisecond), errs[0])
	}
	const total = 3 * perPhase
	start := time.Now()
	got := snk.wait(t, total, 90*time.Second)
	t.Logf("Redis down %s; %d accepted (%d while Redis was down), 0 refused; all delivered %s after the last acceptance",
		outage.Round(time.Millisecond), total, perPhase, time.Since(start).Round(time.Millisecond))

	// Exactly once: every subject arrived, none twice. Late duplicates
	// would be caught by the count check against what was sent.
	subj := regexp.MustCompile(`(?m)^Subject: (load-\d+-\d+-\d+)\r?$`)
	seen := map[string]int{}
	for _, m := range got {
		sm := subj.FindSubmatch(m.data)
		if sm == nil {
			t.Fatalf("delivered message without a load subject:\n%s", m.data)
		}
		seen[string(sm[1])]++
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", s, n)
		}
	}
	if len(seen) != total || len(got) != total {
		t.Fatalf("delivered %d messages (%d distinct), want %d\n%s", len(got), len(seen), total, p.stderr)
	}
}
