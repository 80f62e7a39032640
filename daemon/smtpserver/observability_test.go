package smtpserver_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
)

func TestMetricsCountMessagesAndRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *smtpserver.Options) { o.Registerer = reg })
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	c := e.dial()
	if err := send(c, "a@example.org", []string{"sales@example.com", e.fx.Server.Token + "@" + returnPathDomain}, "Subject: m\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.org", []string{"victim@elsewhere.example"}, "Subject: m\r\n\r\nx\r\n"); code(err) != 530 {
		t.Fatalf("relay attempt: %v, want 530", err)
	}
	for _, tc := range []struct {
		name, metric string
		labels       map[string]string
		want         float64
	}{
		{"incoming messages", "postal_smtp_server_messages_total", map[string]string{"type": "incoming", "tls": "no"}, 1},
		{"bounces", "postal_smtp_server_messages_total", map[string]string{"type": "bounce", "tls": "no"}, 1},
		{"relay refusals", "postal_smtp_server_client_errors", map[string]string{"error": "authentication-required"}, 1},
	} {
		if got := counterValue(t, reg, tc.metric, tc.labels); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "postal_smtp_server_connections_total"); err != nil || n != 1 {
		t.Errorf("connections_total series = %d, %v", n, err)
	}
}

// counterValue reads the counter series name{labels} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestConnectionLogsFollowTheConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		log     bool
		exclude string
		want    bool
	}{
		{"log_connections off logs nothing", false, "", false},
		{"log_connections on logs the connection", true, "", true},
		{"the exclusion matcher silences matching addresses", true, `^127\.`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *smtpserver.Options) {
				o.Config.LogConnections = tc.log
				o.Config.LogIPAddressExclusionMatcher = tc.exclude
			})
			r := e.rawDial()
			r.expect(220, "")
			r.send("QUIT")
			r.expect(221, "")
			if err := e.stop(); err != nil {
				t.Fatal(err)
			}
			logs := e.logs.String()
			if got := strings.Contains(logs, "connection opened") && strings.Contains(logs, "connection closed"); got != tc.want {
				t.Fatalf("connection logged = %v, want %v:\n%s", got, tc.want, logs)
			}
		})
	}
}

func TestSMTPUTF8AddressesAreStored(t *testing.T) {
	e := newEnv(t)
	e.route(e.fx.Domain.ID, "sales", store.RouteModeAccept)
	r := e.rawDial()
	r.expect(220, "")
	r.send("EHLO client.test", "MAIL FROM:<jörg@bücher.example> SMTPUTF8", "RCPT TO:<sales@example.com>", "DATA")
	r.expect(250, "SMTPUTF8")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(354, "")
	r.send("Subject: Grüße", "", "ok", ".")
	r.expect(250, "")
	ms := e.storedMessages()
	if len(ms) != 1 || ms[0].MailFrom != "jörg@bücher.example" || ms[0].Subject != "Grüße" {
		t.Fatalf("stored %+v", ms)
	}
}
