package tracker_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/tracker"
	"github.com/postalgo/postal/daemon/webhook"
)

const html = "From: a@example.com\r\nX-AMP: other\r\nContent-Type: text/html\r\n\r\n" +
	"<html><body><a href=\"https://shop.test/a\">a</a><a href='https://shop.test/a'>again</a></body></html>\r\n"

type fixture struct {
	s   *store.Store
	fx  storetest.Fixture
	msg *store.Message
}

func newFixture(t *testing.T, s *store.Store, raw string, verified bool) fixture {
	t.Helper()
	ctx := context.Background()
	fx := storetest.NewFixture(t, s, "example.com", "")
	td, err := s.CreateTrackDomain(ctx, fx.Server.ID, store.NewTrackDomain{DomainID: fx.Domain.ID, Name: "click",
		SSLEnabled: true, TrackClicks: true, TrackLoads: true})
	if err != nil {
		t.Fatal(err)
	}
	if verified {
		if err := s.SetTrackDomainVerified(ctx, fx.Server.ID, td.UUID, true); err != nil {
			t.Fatal(err)
		}
	}
	acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte(raw), Messages: []store.NewMessage{
		{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "b@dest.test", MailFrom: "a@example.com", DomainID: fx.Domain.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Message(ctx, acc[0][0].MessageID)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{s: s, fx: fx, msg: m}
}

// A retry (a second Track of the same message) sends the same bytes and
// creates no new links; the same URL twice shares one link.
func TestTrackIsDeterministicAcrossRetries(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, html, true)
		tr := tracker.NewTracker(s, nil)
		first, err := tr.Track(ctx, f.msg, []byte(html))
		if err != nil {
			t.Fatal(err)
		}
		second, err := tr.Track(ctx, f.msg, []byte(html))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("retry sends different bytes:\n%s\n%s", first, second)
		}
		if bytes.Contains(first, []byte("X-AMP")) {
			t.Errorf("X-AMP not stripped:\n%s", first)
		}
		if n := bytes.Count(first, []byte("https://click.example.com/"+f.fx.Server.Token+"/")); n != 2 {
			t.Errorf("rewritten links = %d, want 2:\n%s", n, first)
		}
		mt, err := s.TrackingOf(ctx, f.msg.ID)
		if err != nil || !mt.Parsed || mt.TrackedLinks != 2 || mt.TrackedImages != 1 {
			t.Fatalf("tracking = %+v, %v", mt, err)
		}
		links, err := s.EnsureLinks(ctx, f.msg.ID, nil, 0, 0)
		if err != nil || len(links) != 1 {
			t.Fatalf("links = %v, %v; want the one URL's", links, err)
		}
	})
}

func TestTrackSkipsWhenNotActiveOrAsked(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		// Track domain neither DNS OK nor verified: untouched.
		f := newFixture(t, s, html, false)
		tr := tracker.NewTracker(s, nil)
		out, err := tr.Track(ctx, f.msg, []byte(html))
		if err != nil || bytes.Contains(out, []byte("click.example.com")) {
			t.Fatalf("inactive track domain rewrote: %v\n%s", err, out)
		}
		// X-AMP: skip on an active one: untouched and the header removed.
		f.s.SaveTrackDomainDNSCheck(ctx, mustTD(t, s, f.fx.Server.ID).ID, store.DNSCheck{Status: "OK"}, time.Now())
		skip := strings.Replace(html, "X-AMP: other", "X-AMP: skip", 1)
		out, err = tr.Track(ctx, f.msg, []byte(skip))
		if err != nil || bytes.Contains(out, []byte("click.example.com")) || bytes.Contains(out, []byte("X-AMP")) {
			t.Fatalf("X-AMP: skip: %v\n%s", err, out)
		}
		if tr.Tracks(ctx, f.msg) {
			t.Error("Tracks is true within the cache's 5 s of seeing no track domain")
		}
		tr = tracker.NewTracker(s, nil) // the cached "none" is up to 5 s old
		if !tr.Tracks(ctx, f.msg) {
			t.Error("Tracks is false for a DNS OK track domain")
		}
		out, err = tr.Track(ctx, f.msg, []byte(html))
		if err != nil || !bytes.Contains(out, []byte("click.example.com")) {
			t.Fatalf("DNS OK track domain did not rewrite: %v\n%s", err, out)
		}
	})
}

func mustTD(t *testing.T, s *store.Store, serverID int64) *store.TrackDomain {
	t.Helper()
	tds, err := s.TrackDomains(context.Background(), serverID)
	if err != nil || len(tds) != 1 {
		t.Fatalf("track domains = %v, %v", tds, err)
	}
	return tds[0]
}

type recorder struct{ ids []int64 }

func (r *recorder) Enqueue(_ context.Context, kind queue.Kind, jobs ...queue.Job) error {
	if kind != queue.Webhooks {
		panic("wrong stream " + string(kind))
	}
	for _, j := range jobs {
		r.ids = append(r.ids, j.ID)
	}
	return nil
}

func TestHandler(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, html, true)
		if _, err := s.CreateWebhook(ctx, f.fx.Server.ID, store.NewWebhook{Name: "all", URL: "https://hooks.test/", AllEvents: true, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := tracker.NewTracker(s, nil).Track(ctx, f.msg, []byte(html)); err != nil {
			t.Fatal(err)
		}
		links, err := s.EnsureLinks(ctx, f.msg.ID, []string{"https://shop.test/a"}, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		h := tracker.NewHandler(tracker.HandlerOptions{Store: s, Webhooks: rec,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
		srv := httptest.NewServer(h.Wrap(next))
		defer srv.Close()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(path, trackHost string) (*http.Response, []byte) {
			t.Helper()
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			if trackHost != "" {
				req.Header.Set("X-Postal-Track-Host", trackHost)
			}
			req.Header.Set("User-Agent", "ua")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			return resp, b.Bytes()
		}
		st := f.fx.Server.Token
		cases := []struct {
			name, path, header string
			code               int
			body               string
		}{
			{"no header goes to the next handler", "/" + st + "/" + links["https://shop.test/a"], "", http.StatusTeapot, ""},
			{"header not 1 goes to the next handler", "/" + st + "/" + links["https://shop.test/a"], "yes", http.StatusTeapot, ""},
			{"root says hello", "/", "1", 200, "Hello."},
			{"bad characters say hello", "/" + st + "/a.b", "1", 200, "Hello."},
			{"unknown server", "/zzzzzz/abc", "1", 404, "Invalid Server Token"},
			{"unknown link", "/" + st + "/nosuchlink", "1", 404, "Link not found"},
			{"old image proxy refused", "/img/" + st + "/" + f.msg.Token + "?src=http://evil.test/x.png", "1", 400, "Invalid/missing source image"},
			{"unknown message still gets a pixel", "/img/" + st + "/nosuchmessage", "1", 200, ""},
		}
		for _, c := range cases {
			resp, body := get(c.path, c.header)
			if resp.StatusCode != c.code || (c.body != "" && string(body) != c.body) {
				t.Errorf("%s: %d %q, want %d %q", c.name, resp.StatusCode, body, c.code, c.body)
			}
		}
		resp, body := get("/img/"+strings.ToUpper(st)+"/"+f.msg.Token+"/extra", " 1 ")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("pixel: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if img, err := png.Decode(bytes.NewReader(body)); err != nil || img.Bounds().Dx() != 1 || img.Bounds().Dy() != 1 {
			t.Fatalf("pixel is not a 1x1 PNG: %v", err)
		}
		resp, body = get("/"+st+"/"+links["https://shop.test/a"], "1")
		if resp.StatusCode != 307 || resp.Header.Get("Location") != "https://shop.test/a" || string(body) != "Redirected to: https://shop.test/a" {
			t.Fatalf("click: %d %q %q", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		// The src load counted too (as Postal), so two loads, one click,
		// three webhook requests enqueued after their commits.
		mt, err := s.TrackingOf(ctx, f.msg.ID)
		if err != nil || len(mt.Loads) != 2 || len(mt.Clicks) != 1 || mt.Loads[0].IP != "127.0.0.1" {
			t.Fatalf("tracking = %+v, %v", mt, err)
		}
		reqs, err := s.WebhookRequests(ctx, rec.ids)
		if err != nil || len(reqs) != 3 || reqs[2].Event != webhook.EventMessageLinkClicked ||
			!strings.Contains(reqs[2].Payload, `"url":"https://shop.test/a"`) || !strings.Contains(reqs[0].Payload, `"user_agent":"ua"`) {
			t.Fatalf("webhook requests = %+v, %v", reqs, err)
		}
		if mine, err := s.WebhookRequestsOfMessage(ctx, f.msg.ID); err != nil || len(mine) != 3 {
			t.Fatalf("requests of the message = %+v, %v", mine, err)
		}
	})
}

// A trusted proxy's X-Forwarded-For names the client; an untrusted
// sender's does not.
func TestClientIPThroughTrustedProxies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, html, true)
		h := tracker.NewHandler(tracker.HandlerOptions{Store: s,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		for _, c := range []struct{ remote, xff, want string }{
			{"10.1.2.3:5000", "198.51.100.7, 10.9.9.9", "198.51.100.7"},
			{"192.0.2.1:5000", "198.51.100.7", "192.0.2.1"},
		} {
			req := httptest.NewRequest("GET", "/img/"+f.fx.Server.Token+"/"+f.msg.Token, nil)
			req.RemoteAddr = c.remote
			req.Header.Set("X-Forwarded-For", c.xff)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			mt, err := s.TrackingOf(ctx, f.msg.ID)
			if err != nil || w.Code != 200 || mt.Loads[0].IP != c.want {
				t.Errorf("remote %s xff %q: load IP %+v, want %s (%v)", c.remote, c.xff, mt.Loads, c.want, err)
			}
		}
	})
}

// Concurrent Track calls each get their own message's
// links, and a retry of each sends the same bytes.
func TestConcurrentTrack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s, html, true)
		var msgs []*store.Message
		for i := range 20 {
			raw := strings.Replace(html, "https://shop.test/a", fmt.Sprintf("https://shop.test/%d", i), 1)
			acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte(raw), Messages: []store.NewMessage{
				{ServerID: f.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "b@dest.test", MailFrom: "a@example.com", DomainID: f.fx.Domain.ID}}}})
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.Message(ctx, acc[0][0].MessageID)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		tr := tracker.NewTracker(s, nil)
		outs := make([][]byte, len(msgs))
		errs := make([]error, len(msgs))
		var wg sync.WaitGroup
		for i, m := range msgs {
			wg.Go(func() {
				raw := strings.Replace(html, "https://shop.test/a", fmt.Sprintf("https://shop.test/%d", i), 1)
				outs[i], errs[i] = tr.Track(ctx, m, []byte(raw))
			})
		}
		wg.Wait()
		for i, m := range msgs {
			if errs[i] != nil {
				t.Fatalf("message %d: %v", i, errs[i])
			}
			links, err := s.EnsureLinks(ctx, m.ID, nil, 0, 0)
			if err != nil || len(links) != 2 {
				t.Fatalf("message %d links = %v, %v", i, links, err)
			}
			if tok := links[fmt.Sprintf("https://shop.test/%d", i)]; tok == "" || !bytes.Contains(outs[i], []byte("/"+tok+"'")) {
				t.Fatalf("message %d: token %q not in\n%s", i, tok, outs[i])
			}
			raw := strings.Replace(html, "https://shop.test/a", fmt.Sprintf("https://shop.test/%d", i), 1)
			again, err := tr.Track(ctx, m, []byte(raw))
			if err != nil || !bytes.Equal(again, outs[i]) {
				t.Fatalf("message %d retry differs (%v)", i, err)
			}
		}
	})
}
