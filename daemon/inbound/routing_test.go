package inbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/postalgo/postal/daemon/endpoint"
	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhook"
)

// receiver is an HTTP endpoint whose answer per path is set by the test; it
// verifies every request's SHA-256 signature.
type receiver struct {
	mu     sync.Mutex
	status map[string]int
	hits   map[string]int
	bodies map[string][]byte
	badSig int
	key    *signing.Key
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if signing.VerifySHA256(r.key.Public(), b, req.Header.Get(webhook.HeaderSignature256)) != nil {
		r.badSig++
	}
	r.hits[req.URL.Path]++
	r.bodies[req.URL.Path] = b
	code := r.status[req.URL.Path]
	if code == 0 {
		code = 200
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, "answer for "+req.URL.Path)
}

func (r *receiver) set(path string, code int) {
	r.mu.Lock()
	r.status[path] = code
	r.mu.Unlock()
}

func testKey(t *testing.T) *signing.Key {
	priv, err := signing.Generate(signing.MinBits)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const incomingRaw = "From: Sender <sender@far.test>\r\nTo: x@example.com\r\nSubject: Hello route\r\n" +
	"Message-ID: <m1@far.test>\r\n\r\nHi there\r\n"

func TestRoutingModesAndHTTPResults(t *testing.T) {
	key := testKey(t)
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rcv := &receiver{status: map[string]int{}, hits: map[string]int{}, bodies: map[string][]byte{}, key: key}
		srv := httptest.NewServer(rcv)
		defer srv.Close()
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		e := &env{t: t, s: s, fx: storetest.NewFixture(t, s, "example.com", ""), now: now}
		if _, err := s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "all", URL: "https://hooks.test/all",
			AllEvents: true, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		client, err := endpoint.New(endpoint.Options{Signer: key, UserAgent: "Postal/test"})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		h, err := New(Options{Store: s, HTTP: client, Now: func() time.Time { return e.now }, MaxAttempts: 3,
			ReturnPathDomain: "rp.postal.test", WebHostname: "postal.test"})
		if err != nil {
			t.Fatal(err)
		}
		route := func(name, mode, path string) *store.Route {
			t.Helper()
			nr := store.NewRoute{DomainID: e.fx.Domain.ID, Name: name, Mode: mode}
			if path != "" {
				nr.Endpoint = &store.NewEndpoint{Type: store.EndpointHTTP, URL: srv.URL + path}
			}
			r, err := s.CreateRoute(ctx, e.fx.Server.ID, nr)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		incoming := func(r *store.Route, from string) *store.QueuedMessage {
			nm := store.NewMessage{Scope: store.ScopeIncoming, RcptTo: "x@example.com", MailFrom: from,
				Subject: "Hello route", QueueDomain: "example.com"}
			if r != nil {
				nm.RouteID, nm.DomainID, nm.RcptTo = r.ID, r.DomainID, r.Address()
			}
			return e.store([]byte(incomingRaw), nm)
		}
		// run handles rows, commits, and returns the commit report.
		run := func(rows ...*store.QueuedMessage) store.Committed {
			t.Helper()
			outs := h.Handle(ctx, rows)
			c, err := s.CommitOutcomes(ctx, outs)
			if err != nil {
				t.Fatal(err)
			}
			for i, ok := range c.Applied {
				if !ok {
					t.Fatalf("outcome %d not applied", i)
				}
			}
			return c
		}
		lastDelivery := func(id int64) *store.Delivery {
			t.Helper()
			ds, err := s.Deliveries(ctx, id)
			if err != nil || len(ds) == 0 {
				t.Fatalf("deliveries of %d: %v %v", id, ds, err)
			}
			return ds[len(ds)-1]
		}
		events := func(c store.Committed) []string {
			t.Helper()
			reqs, err := s.WebhookRequests(ctx, c.Webhooks)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range reqs {
				var p struct {
					Message webhook.Message `json:"message"`
				}
				_ = json.Unmarshal([]byte(r.Payload), &p)
				if p.Message.Direction != "incoming" {
					t.Errorf("%s payload direction %q", r.Event, p.Message.Direction)
				}
				out = append(out, r.Event)
			}
			return out
		}

		t.Run("accept", func(t *testing.T) {
			q := incoming(route("acc", store.RouteModeAccept, ""), "sender@far.test")
			run(q)
			if m := e.message(q.MessageID); m.Status != store.StatusProcessed || lastDelivery(m.ID).Details != detailsAccepted {
				t.Errorf("status %s", m.Status)
			}
		})
		t.Run("hold", func(t *testing.T) {
			q := incoming(route("hold", store.RouteModeHold, ""), "sender@far.test")
			c := run(q)
			if m := e.message(q.MessageID); m.Status != store.StatusHeld || !m.Held {
				t.Errorf("status %s held %v", m.Status, m.Held)
			}
			if ev := events(c); len(ev) != 1 || ev[0] != webhook.EventMessageHeld {
				t.Errorf("events %v", ev)
			}
		})
		t.Run("bounce mode bounces to the sender", func(t *testing.T) {
			q := incoming(route("bnc", store.RouteModeBounce, ""), "sender@far.test")
			c := run(q)
			m := e.message(q.MessageID)
			if m.Status != store.StatusHardFail || len(c.Queued) != 1 {
				t.Fatalf("status %s, queued %v", m.Status, c.Queued)
			}
			d := lastDelivery(m.ID)
			if !strings.HasPrefix(d.Details, detailsBounced) || !strings.Contains(d.Details, "Bounce sent to sender") {
				t.Errorf("details %q", d.Details)
			}
			checkBounce(t, e, c.Queued[0].MessageID, m)
		})
		t.Run("no route hard-fails without a bounce", func(t *testing.T) {
			q := incoming(nil, "sender@far.test")
			c := run(q)
			if m := e.message(q.MessageID); m.Status != store.StatusHardFail || lastDelivery(m.ID).Details != detailsNoRoute ||
				len(c.Queued) != 0 {
				t.Errorf("status %s queued %v", m.Status, c.Queued)
			}
		})
		t.Run("additional endpoints get one message each, made once", func(t *testing.T) {
			r := route("multi", store.RouteModeEndpoint, "/primary")
			for _, path := range []string{"/extra1", "/extra2"} {
				ep, err := s.CreateEndpoint(ctx, e.fx.Server.ID, store.NewEndpoint{Type: store.EndpointHTTP, URL: srv.URL + path})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.AddAdditionalEndpoint(ctx, e.fx.Server.ID, r.ID, ep.UUID); err != nil {
					t.Fatal(err)
				}
			}
			rcv.set("/primary", 500)
			q := incoming(r, "sender@far.test")
			c := run(q)
			if len(c.Queued) != 2 {
				t.Fatalf("queued copies = %+v, want 2", c.Queued)
			}
			var rows []*store.QueuedMessage
			for _, a := range c.Queued {
				claimed, err := s.ClaimQueued(ctx, []int64{a.QueuedID}, "w", time.Now().Add(time.Second), time.Now().Add(time.Hour))
				if err != nil || len(claimed) != 1 {
					t.Fatalf("claim copy: %v %v", claimed, err)
				}
				rows = append(rows, claimed[0])
			}
			if c := run(rows...); len(c.Queued) != 0 {
				t.Errorf("copies made copies: %+v", c.Queued)
			}
			orig := e.message(q.MessageID)
			for i, a := range c.Queued {
				m := e.message(a.MessageID)
				if m.Status != store.StatusSent || m.RawMessageID != orig.RawMessageID || m.RouteID != r.ID ||
					m.RcptTo != orig.RcptTo || m.EndpointType != store.EndpointHTTP {
					t.Errorf("copy %d = %+v", i, m)
				}
			}
			rcv.mu.Lock()
			hits := []int{rcv.hits["/primary"], rcv.hits["/extra1"], rcv.hits["/extra2"]}
			rcv.mu.Unlock()
			if hits[0] != 1 || hits[1] != 1 || hits[2] != 1 {
				t.Errorf("hits primary/extra1/extra2 = %v, want 1 each", hits)
			}
			// A successful delivery marks its endpoint used, a failed one
			// does not.
			lastUsed := func(id int64) time.Time {
				t.Helper()
				ep, err := s.HTTPEndpointByID(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return ep.LastUsedAt
			}
			for _, a := range c.Queued {
				if m := e.message(a.MessageID); lastUsed(m.EndpointID).IsZero() {
					t.Errorf("additional endpoint %d not marked used", m.EndpointID)
				}
			}
			if !lastUsed(r.EndpointID).IsZero() {
				t.Error("primary endpoint marked used after a 500")
			}
			// The primary's retry makes no more copies.
			if orig.Status != store.StatusSoftFail {
				t.Fatalf("primary status %s", orig.Status)
			}
			rcv.set("/primary", 200)
			later := e.now.Add(24 * time.Hour)
			again, err := s.ClaimQueued(ctx, []int64{q.ID}, "w", later, later.Add(time.Hour))
			if err != nil || len(again) != 1 {
				t.Fatalf("claim retry: %v %v", again, err)
			}
			if c := run(again...); len(c.Queued) != 0 || e.message(q.MessageID).Status != store.StatusSent {
				t.Errorf("retry queued %+v, status %s", c.Queued, e.message(q.MessageID).Status)
			}
			if lastUsed(r.EndpointID).IsZero() {
				t.Error("primary endpoint not marked used after its 200")
			}
		})
		t.Run("http 200 is sent", func(t *testing.T) {
			q := incoming(route("ok", store.RouteModeEndpoint, "/ok"), "sender@far.test")
			c := run(q)
			m := e.message(q.MessageID)
			d := lastDelivery(m.ID)
			if m.Status != store.StatusSent || d.Details != "Received a 200 from "+srv.URL+"/ok" || d.Output != "answer for /ok" ||
				len(d.LogID) != 8 {
				t.Errorf("status %s delivery %+v", m.Status, d)
			}
			if ev := events(c); len(ev) != 1 || ev[0] != webhook.EventMessageSent {
				t.Errorf("events %v", ev)
			}
			var p map[string]any
			rcv.mu.Lock()
			_ = json.Unmarshal(rcv.bodies["/ok"], &p)
			rcv.mu.Unlock()
			if p["rcpt_to"] != "ok@example.com" || p["subject"] != "Hello route" || p["plain_body"] != "Hi there\r\n" {
				t.Errorf("payload %v", p)
			}
		})
		t.Run("http 500 is retried then sent", func(t *testing.T) {
			rcv.set("/flaky", 500)
			q := incoming(route("flaky", store.RouteModeEndpoint, "/flaky"), "sender@far.test")
			c := run(q)
			m := e.message(q.MessageID)
			if m.Status != store.StatusSoftFail {
				t.Fatalf("status %s", m.Status)
			}
			if ev := events(c); len(ev) != 1 || ev[0] != webhook.EventMessageDelayed {
				t.Errorf("events %v", ev)
			}
			rcv.set("/flaky", 200)
			e.now = e.now.Add(6 * time.Minute) // past the first retry (5 min)
			rows, err := s.ClaimQueued(ctx, []int64{q.ID}, "w", e.now, e.now.Add(time.Hour))
			if err != nil || len(rows) != 1 || rows[0].Attempts != 1 {
				t.Fatalf("reclaim %v %v", rows, err)
			}
			run(rows[0])
			if m := e.message(q.MessageID); m.Status != store.StatusSent {
				t.Errorf("after retry: %s", m.Status)
			}
			ds, _ := s.Deliveries(ctx, q.MessageID)
			if len(ds) != 2 {
				t.Errorf("deliveries %d, want one per attempt", len(ds))
			}
		})
		t.Run("http 429 fails without a bounce", func(t *testing.T) {
			rcv.set("/busy", 429)
			q := incoming(route("busy", store.RouteModeEndpoint, "/busy"), "sender@far.test")
			c := run(q)
			if m := e.message(q.MessageID); m.Status != store.StatusHardFail || len(c.Queued) != 0 {
				t.Errorf("status %s queued %v", m.Status, c.Queued)
			}
		})
		t.Run("http 404 fails with a bounce", func(t *testing.T) {
			rcv.set("/gone", 404)
			q := incoming(route("gone", store.RouteModeEndpoint, "/gone"), "sender@far.test")
			c := run(q)
			m := e.message(q.MessageID)
			if m.Status != store.StatusHardFail || len(c.Queued) != 1 {
				t.Fatalf("status %s queued %v", m.Status, c.Queued)
			}
			checkBounce(t, e, c.Queued[0].MessageID, m)
		})
		t.Run("no bounce without a sender", func(t *testing.T) {
			q := incoming(route("gone2", store.RouteModeEndpoint, "/gone"), "")
			if c := run(q); len(c.Queued) != 0 {
				t.Errorf("bounced to nobody: %v", c.Queued)
			}
		})
		t.Run("the last attempt hard-fails with a bounce", func(t *testing.T) {
			rcv.set("/down", 503)
			q := incoming(route("down", store.RouteModeEndpoint, "/down"), "sender@far.test")
			for i := 0; i < 3; i++ {
				rows, err := s.ClaimQueued(ctx, []int64{q.ID}, "w", e.now, e.now.Add(time.Hour))
				if err != nil || len(rows) != 1 {
					if i == 0 {
						rows = []*store.QueuedMessage{q}
					} else {
						t.Fatalf("claim %d: %v %v", i, rows, err)
					}
				}
				c := run(rows[0])
				e.now = e.now.Add(24 * time.Hour)
				if i == 2 && len(c.Queued) != 1 {
					t.Errorf("no bounce after the last attempt")
				}
			}
			m := e.message(q.MessageID)
			if d := lastDelivery(m.ID); m.Status != store.StatusHardFail ||
				!strings.Contains(d.Details, "Maximum number of delivery attempts (3) has been reached.") {
				t.Errorf("status %s details %q", m.Status, d.Details)
			}
		})
		t.Run("an unlinked bounce goes to the return-path route's endpoint", func(t *testing.T) {
			rt, err := s.CreateReturnPathRoute(ctx, e.fx.Server.ID, srv.URL+"/rp")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateReturnPathRoute(ctx, e.fx.Server.ID, srv.URL+"/rp2"); !errors.Is(err, store.ErrConflict) {
				t.Errorf("second return-path route: %v", err)
			}
			q := e.store([]byte("Subject: Out of office\r\n\r\nBack Monday.\r\n"), store.NewMessage{Scope: store.ScopeIncoming,
				RcptTo: e.fx.Server.Token + "@rp.postal.test", MailFrom: "auto@far.test", Bounce: true, RouteID: rt.ID,
				QueueDomain: "rp.postal.test"})
			c := run(q)
			if m := e.message(q.MessageID); m.Status != store.StatusSent || len(c.Queued) != 0 {
				t.Errorf("status %s queued %v", m.Status, c.Queued)
			}
			var p map[string]any
			rcv.mu.Lock()
			_ = json.Unmarshal(rcv.bodies["/rp"], &p)
			rcv.mu.Unlock()
			if p["bounce"] != true || p["subject"] != "Out of office" {
				t.Errorf("payload %v", p)
			}
		})
		t.Run("development mode holds", func(t *testing.T) {
			r := route("dev", store.RouteModeEndpoint, "/dev")
			dev := store.ModeDevelopment
			if _, err := s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{Mode: &dev}); err != nil {
				t.Fatal(err)
			}
			q := incoming(r, "sender@far.test")
			run(q)
			if m := e.message(q.MessageID); m.Status != store.StatusHeld || lastDelivery(m.ID).Details != detailsDevelopment {
				t.Errorf("status %s", m.Status)
			}
			rcv.mu.Lock()
			hits := rcv.hits["/dev"]
			rcv.mu.Unlock()
			if hits != 0 {
				t.Errorf("endpoint called in development mode")
			}
		})
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		if rcv.badSig != 0 {
			t.Errorf("%d requests with a bad signature", rcv.badSig)
		}
	})
}

// checkBounce checks the bounce message sent for orig.
func checkBounce(t *testing.T, e *env, bounceID int64, orig *store.Message) {
	t.Helper()
	b := e.message(bounceID)
	if !b.Bounce || b.BounceForID != orig.ID || b.RcptTo != orig.MailFrom || b.Scope != store.ScopeOutgoing ||
		b.Subject != "Mail Delivery Failed (Hello route)" {
		t.Errorf("bounce = %+v", b)
	}
	raws, err := e.s.RawMessages(context.Background(), []int64{b.RawMessageID})
	if err != nil {
		t.Fatal(err)
	}
	mr, err := mail.CreateReader(bytes.NewReader(raws[b.RawMessageID]))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := mr.Header.AddressList("From")
	if len(from) != 1 || from[0].Name != "Mail Delivery Service" || from[0].Address != orig.RcptTo {
		t.Errorf("From %v", from)
	}
	var text string
	var attached bool
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		body, _ := io.ReadAll(p.Body)
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			text = string(body)
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			attached = name == "Original Message.eml" && string(body) == incomingRaw
		}
	}
	if !strings.Contains(text, "Message Token: "+orig.Token+"@"+e.fx.Server.Token) || !strings.Contains(text, "Rcpt To: "+orig.RcptTo) {
		t.Errorf("text %q", text)
	}
	if !attached {
		t.Errorf("Original Message.eml missing or changed")
	}
}
