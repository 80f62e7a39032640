package inbound

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/endpoint"
	"github.com/postalgo/postal/daemon/inspect"
	"github.com/postalgo/postal/daemon/inspect/inspecttest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// rawOf decodes a RawMessage/JSON payload's message.
func rawOf(t *testing.T, body []byte) string {
	t.Helper()
	var p struct{ Message string }
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("payload %s: %v", body, err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(p.Message, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestInspectionVerdicts(t *testing.T) {
	key := testKey(t)
	rspamd := inspecttest.RspamdURL(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	spam := inspecttest.Message("Cheap pills.\r\n" + inspecttest.GTUBE)

	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rcv := &receiver{status: map[string]int{}, hits: map[string]int{}, bodies: map[string][]byte{}, key: key}
		srv := httptest.NewServer(rcv)
		defer srv.Close()
		e := &env{t: t, s: s, fx: storetest.NewFixture(t, s, "example.com", ""), now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
		client, err := endpoint.New(endpoint.Options{Signer: key, UserAgent: "Postal/test"})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		handler := func(in *inspect.Inspector, accept bool) *Handler {
			h, err := New(Options{Store: s, HTTP: client, Now: func() time.Time { return e.now }, MaxAttempts: 3,
				ReturnPathDomain: "rp.postal.test", WebHostname: "postal.test", Inspector: in, AcceptUnscanned: accept})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		scanning := handler(inspect.New(&inspect.Rspamd{URL: rspamd, Timeout: 20 * time.Second}, nil, 1<<20), false)
		route := func(name, spamMode string) *store.Route {
			r, err := s.CreateRoute(ctx, e.fx.Server.ID, store.NewRoute{DomainID: e.fx.Domain.ID, Name: name, SpamMode: spamMode,
				Mode: store.RouteModeEndpoint, Endpoint: &store.NewEndpoint{Type: store.EndpointHTTP, URL: srv.URL + "/" + name,
					Format: store.FormatRawMessage}})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		incoming := func(r *store.Route, raw []byte) *store.QueuedMessage {
			return e.store(raw, store.NewMessage{Scope: store.ScopeIncoming, RcptTo: r.Address(), MailFrom: "sender@far.test",
				Subject: "inspection test", QueueDomain: "example.com", RouteID: r.ID, DomainID: r.DomainID})
		}
		run := func(h *Handler, rows ...*store.QueuedMessage) []store.Outcome {
			t.Helper()
			outs := h.Handle(ctx, rows)
			c, err := s.CommitOutcomes(ctx, outs)
			if err != nil {
				t.Fatal(err)
			}
			for i, ok := range c.Applied {
				if !ok || c.Fallback[i] != "" {
					t.Fatalf("outcome %d not applied as given: %q", i, c.Fallback[i])
				}
			}
			return outs
		}

		// A quarantined message released by hand goes to its endpoint,
		// marked as spam; it is not inspected again.
		q := route("quarantine", store.SpamModeQuarantine)
		row := incoming(q, spam)
		if out := run(scanning, row)[0]; out.Status() != store.StatusHeld || out.Delivery().Details != detailsQuarantine {
			t.Fatalf("GTUBE to quarantine: %s %q", out.Status(), out.Delivery().Details)
		}
		rel, err := s.ReleaseHeld(ctx, row.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.ClaimQueued(ctx, []int64{rel.ID}, "w", time.Now().Add(time.Second), time.Now().Add(time.Hour))
		if err != nil || len(rows) != 1 {
			t.Fatalf("claim released: %v %v", rows, err)
		}
		down := handler(inspect.New(&inspect.Rspamd{URL: "http://" + closed}, nil, 0), false)
		if out := run(down, rows[0])[0]; out.Status() != store.StatusSent || out.Effects().Inspection != nil {
			t.Fatalf("released: %s, inspection %+v; want Sent on the recorded inspection", out.Status(), out.Effects().Inspection)
		}
		if got := rawOf(t, rcv.bodies["/quarantine"]); !strings.HasPrefix(got, "X-Postal-Spam: yes\r\nX-Postal-Spam-Threshold: 5.0\r\nX-Postal-Spam-Score: ") ||
			!strings.Contains(got, "\r\nX-Postal-Threat: unchecked\r\n") {
			t.Errorf("released message: %q", got)
		}

		// A score at the failure threshold fails, without a bounce.
		ten := 10.0
		if _, err := s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{SpamFailureThreshold: &ten}); err != nil {
			t.Fatal(err)
		}
		m := route("mark", store.SpamModeMark)
		out := run(scanning, incoming(m, spam))[0]
		if out.Status() != store.StatusHardFail || out.Delivery().Details != "Message's spam score is higher than the failure threshold for this server. Threshold is currently 10.0." ||
			len(out.Effects().Bounces) != 0 || rcv.hits["/mark"] != 0 {
			t.Fatalf("over the failure threshold: %s %q, %d bounces, %d requests", out.Status(), out.Delivery().Details,
				len(out.Effects().Bounces), rcv.hits["/mark"])
		}

		// A scanner that is down: retried by default, delivered as unchecked
		// when the policy accepts, and the reason is recorded.
		a := route("accept", store.SpamModeQuarantine)
		row = incoming(a, spam)
		if out := run(down, row)[0]; out.Status() != store.StatusSoftFail || !out.Retries() ||
			!strings.Contains(out.Delivery().Details, "rspamd unavailable") || rcv.hits["/accept"] != 0 {
			t.Fatalf("scanner down: %s retry=%v %q", out.Status(), out.Retries(), out.Delivery().Details)
		}
		row = incoming(a, spam)
		if out := run(handler(inspect.New(&inspect.Rspamd{URL: "http://" + closed}, nil, 0), true), row)[0]; out.Status() != store.StatusSent {
			t.Fatalf("scanner down, accept: %s", out.Status())
		}
		if got := rawOf(t, rcv.bodies["/accept"]); !strings.HasPrefix(got, "X-Postal-Spam: unchecked\r\nX-Postal-Spam-Threshold: 5.0\r\nX-Postal-Threat: unchecked\r\n") {
			t.Errorf("unscanned message: %q", got)
		}
		ins, err := s.Inspections(ctx, []int64{row.MessageID})
		if err != nil || !ins[row.MessageID].Inspected || !strings.Contains(ins[row.MessageID].Skipped, "rspamd unavailable") {
			t.Errorf("recorded: %+v, %v", ins[row.MessageID], err)
		}

		// Our own shutdown is not a scanner failure: even under accept, the
		// message is retried, unscanned and undelivered.
		hung, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hung.Close()
		row = incoming(a, spam)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, cancel)
		outs := handler(inspect.New(&inspect.Spamd{Addr: hung.Addr().String(), Timeout: time.Hour}, nil, 0), true).Handle(cctx, []*store.QueuedMessage{row})
		if o := outs[0]; !o.Retries() || o.Status() != "" || o.Effects().Inspection != nil || !strings.Contains(o.Details(), "internal error") {
			t.Fatalf("cancelled scan under accept: status %q retry=%v %q, inspection %+v", o.Status(), o.Retries(), o.Details(), o.Effects().Inspection)
		}
		if _, err := s.CommitOutcomes(ctx, outs); err != nil {
			t.Fatal(err)
		}

		// Over the size limit: not scanned, said so.
		big := route("big", store.SpamModeQuarantine)
		row = incoming(big, spam)
		if out := run(handler(inspect.New(&inspect.Rspamd{URL: rspamd}, nil, 100), false), row)[0]; out.Status() != store.StatusSent {
			t.Fatalf("over the size limit: %s", out.Status())
		}
		if got := rawOf(t, rcv.bodies["/big"]); !strings.HasPrefix(got, "X-Postal-Spam: unchecked\r\n") {
			t.Errorf("large message: %q", got)
		}
		if ins, err := s.Inspections(ctx, []int64{row.MessageID}); err != nil || !strings.Contains(ins[row.MessageID].Skipped, "larger than the inspection limit") {
			t.Errorf("recorded: %+v, %v", ins[row.MessageID], err)
		}
	})
}

func TestPeerFromOurReceivedField(t *testing.T) {
	cases := []struct{ raw, helo, ip string }{
		{"Received: from mx.far.test (mail.far.test [192.0.2.7])\r\n\tby postal.test with SMTP; x\r\nSubject: a\r\n\r\nb", "mx.far.test", "192.0.2.7"},
		{"Received: from [IPv6:2001:db8::1] (unknown [2001:db8::1])\r\n\tby postal.test; x\r\n\r\n", "[IPv6:2001:db8::1]", "2001:db8::1"},
		{"Subject: no received first\r\nReceived: from a (b [192.0.2.1]) by c\r\n\r\n", "", ""},
		{"Received: by postal.test; x\r\n\r\n", "", ""},
		{"Received: from h (r [not-an-ip]) by c\r\n\r\n", "h", ""},
		{"Received: from h\x00\x01 (r) by c [192.0.2.9]\r\n\r\n", "h\ufffd\ufffd", ""},
		{"", "", ""},
	}
	for _, c := range cases {
		helo, ip := peer([]byte(c.raw))
		if helo != c.helo || ip != c.ip {
			t.Errorf("%q: %q %q, want %q %q", c.raw, helo, ip, c.helo, c.ip)
		}
	}
}

func FuzzPeer(f *testing.F) {
	f.Add([]byte("Received: from mx.far.test (mail.far.test [192.0.2.7])\r\n\tby postal.test with SMTP; x\r\n\r\nbody"))
	f.Add([]byte("Received: from [ (]]] [[::1] by\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		helo, ip := peer(raw)
		if len(helo) > 255 || !utf8.ValidString(helo) || strings.ContainsAny(helo, "\x00\r\n") {
			t.Fatalf("helo %q", helo)
		}
		if ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				t.Fatalf("ip %q", ip)
			}
		}
	})
}
