package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// postald runs on a Redis Cluster and behind Sentinel from its
// configuration alone (REDIS_ADDRS, REDIS_MASTER_NAME; the default url is
// then ignored): mail is accepted and delivered end to end, and under
// Sentinel a failover of the master between two bursts loses nothing.
func TestPostaldOnClusterAndSentinel(t *testing.T) {
	for _, tc := range []string{"cluster", "sentinel"} {
		t.Run(tc, func(t *testing.T) {
			var extra []string
			var sentinel *redistest.Sentinel
			if tc == "cluster" {
				c := redistest.StartCluster(t)
				extra = []string{"REDIS_ADDRS=" + strings.Join(c.Addrs, ",")}
			} else {
				sentinel = redistest.StartSentinel(t)
				extra = []string{"REDIS_ADDRS=" + strings.Join(sentinel.Addrs, ","), "REDIS_MASTER_NAME=" + sentinel.MasterName}
			}
			snk, sinkPort := startSink(t)
			dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
			in := newInstall(t, true)
			in.extra = append(extra,
				"DNS_NAMESERVERS="+dns.Addr(),
				fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
				"POSTAL_SMTP_HOSTNAME=postal.test",
				"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
				"REQUEUER_RECONCILE_INTERVAL=1",
			)
			postalctlJSON(t, in, nil, "org", "create", "acme")
			postalctlJSON(t, in, nil, "server", "create", "acme/mail")
			postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
			var cred struct{ Key string }
			postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "smtp", "app")

			// The url is unreachable: only the addrs can make this work.
			p := startPostald(t, in, "redis://127.0.0.1:1/0", "--role", "all")
			waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })
			send := func(from, n int) {
				t.Helper()
				for i := from; i < from+n; i++ {
					if err := sendMail(t, in.smtpPort, cred.Key, "alice@example.com", "bob@dest.test", fmt.Sprintf("%s-%d", tc, i)); err != nil {
						t.Fatalf("send %d: %v\n%s", i, err, p.stderr)
					}
				}
			}
			began := time.Now()
			send(0, 10)
			snk.wait(t, 10, 60*time.Second)
			t.Logf("%s: 10 messages sent and delivered in %s", tc, time.Since(began).Round(time.Millisecond))
			if sentinel == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			old, err := sentinel.Failover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			waitFor(t, "a new master", 30*time.Second, func() bool {
				m, err := sentinel.Master(ctx)
				return err == nil && m != old
			})
			promoted := time.Since(start)
			send(10, 10)
			got := snk.wait(t, 20, 60*time.Second)
			t.Logf("SENTINEL FAILOVER: new master after %s; 10 messages sent after it delivered %s after the failover began (machine shared)",
				promoted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			seen := map[string]bool{}
			for _, m := range got {
				for _, line := range strings.Split(string(m.data), "\r\n") {
					if s, ok := strings.CutPrefix(line, "Subject: "); ok {
						if seen[s] {
							t.Errorf("%s delivered twice", s)
						}
						seen[s] = true
					}
				}
			}
			if len(seen) != 20 {
				t.Fatalf("delivered %d distinct messages, want 20", len(seen))
			}
		})
	}
}
