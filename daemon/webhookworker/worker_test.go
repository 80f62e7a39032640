package webhookworker_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhook"
	"github.com/postalgo/postal/daemon/webhookworker"
	"github.com/postalgo/postal/daemon/webserver"
)

// jwksKey fetches the key whose kid is kid from a JWKS document, using
// nothing but the document.
func jwksKey(t *testing.T, url, kid string) *rsa.PublicKey {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Keys []struct{ Kty, N, E, Kid, Alg, Use string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range doc.Keys {
		if k.Kid != kid || k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad JWK: %v %v", err1, err2)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	t.Fatalf("no key %q in %s", kid, url)
	return nil
}

// TestReceiverVerifiesBothSignaturesWithPublishedKey is the receiver's view:
// the raw body verifies under X-Postal-Signature (SHA-1) and
// X-Postal-Signature-256 with the key the web-server role publishes.
func TestReceiverVerifiesBothSignaturesWithPublishedKey(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	ws, err := webserver.New(webserver.Options{Addr: "127.0.0.1:0", JWKS: signingKey(t).JWKS()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wsDone := make(chan error, 1)
	go func() { wsDone <- ws.Run(ctx) }()
	defer func() { cancel(); <-wsDone }()
	jwks := "http://" + ws.Addr().String() + "/.well-known/jwks.json"

	type verdict struct {
		sha1, sha256 error
		envelope     webhook.Envelope
	}
	verdicts := make(chan verdict, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pub := jwksKey(t, jwks, r.Header.Get("X-Postal-Signature-KID"))
		var v verdict
		sig1, _ := base64.StdEncoding.DecodeString(r.Header.Get("X-Postal-Signature"))
		sum1 := sha1.Sum(body)
		v.sha1 = rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum1[:], sig1)
		sig256, _ := base64.StdEncoding.DecodeString(r.Header.Get("X-Postal-Signature-256"))
		sum256 := sha256.Sum256(body)
		v.sha256 = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum256[:], sig256)
		_ = json.Unmarshal(body, &v.envelope)
		verdicts <- v
		w.WriteHeader(http.StatusOK)
	}))
	defer rcv.Close()

	ids := e.add(rcv.URL+"/hook", 1)
	e.start(webhookworker.Options{})
	v := <-verdicts
	if v.sha1 != nil || v.sha256 != nil {
		t.Fatalf("signatures do not verify: sha1 %v, sha256 %v", v.sha1, v.sha256)
	}
	reqs, _ := s.WebhookRequests(context.Background(), ids) // may already be gone
	_ = reqs
	if v.envelope.Event != webhook.EventMessageSent || v.envelope.UUID == "" || string(v.envelope.Payload) != `{"n":0}` {
		t.Errorf("envelope = %+v", v.envelope)
	}
	waitFor(t, 10*time.Second, "the request to be finished", e.drained)
	log := e.attempts(store.WebhookAttemptFilter{})
	if len(log) != 1 || log[0].Result != "ok" || log[0].StatusCode != 200 || log[0].RequestUUID != v.envelope.UUID || log[0].WillRetry {
		t.Errorf("attempt log = %+v", log)
	}
}

// TestRetriesOnPostalScheduleThenSucceedsOrGivesUp drives the retry
// schedule with an injected clock: a receiver that fails five times then
// answers gets six attempts at +0, 2, 5, 11, 21 and 36 minutes; one that
// always fails is given up after the sixth and logged as failed.
func TestRetriesOnPostalScheduleThenSucceedsOrGivesUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		rcv := newReceiver(t, func(path string, n int) int {
			if path == "/flaky" && n == 6 {
				return 200
			}
			return 500
		})
		flaky := e.add(rcv.srv.URL+"/flaky", 1)[0]
		down := e.add(rcv.srv.URL+"/down", 1)[0]
		t0 := time.Now()
		clk := newClock(t0)
		e.start(webhookworker.Options{Now: clk.now})
		ctx := context.Background()
		wantAt := []int64{0, 2, 5, 11, 21, 36}
		for i, at := range wantAt {
			if i > 0 {
				clk.set(t0.Add(time.Duration(at) * time.Minute))
				// The requeuer's job: move due retries back to the stream.
				moved := 0
				waitFor(t, 10*time.Second, "both retries to be due", func() bool {
					n, err := e.queue.MoveDue(ctx, clk.now(), 0)
					if err != nil {
						t.Fatal(err)
					}
					moved += n
					return moved == 2
				})
			}
			waitFor(t, 10*time.Second, "attempt to be logged", func() bool {
				return len(e.attempts(store.WebhookAttemptFilter{})) == 2*(i+1)
			})
			if i < len(wantAt)-1 {
				locks, err := s.WebhookRequestLocks(ctx, []int64{flaky, down})
				if err != nil || len(locks) != 2 {
					t.Fatalf("after attempt %d: %v, %v", i+1, locks, err)
				}
				for _, l := range locks {
					if want := t0.Add(time.Duration(wantAt[i+1]) * time.Minute); !l.RetryAfter.Equal(want.Truncate(time.Microsecond)) {
						t.Errorf("after attempt %d: retry_after +%v, want +%v", i+1, l.RetryAfter.Sub(t0), want.Sub(t0))
					}
				}
			}
		}
		if rcv.count("/flaky") != 6 || rcv.count("/down") != 6 {
			t.Errorf("hits: flaky %d, down %d; want 6 each", rcv.count("/flaky"), rcv.count("/down"))
		}
		waitFor(t, 10*time.Second, "both requests to be settled", e.drained)
		log := e.attempts(store.WebhookAttemptFilter{})
		byURL := map[string][]*store.WebhookAttempt{}
		for _, a := range log {
			byURL[a.URL] = append([]*store.WebhookAttempt{a}, byURL[a.URL]...) // oldest first
		}
		for url, as := range byURL {
			for i, a := range as {
				if a.Attempt != i+1 || a.CreatedAt.Sub(t0).Round(time.Minute) != time.Duration(wantAt[i])*time.Minute {
					t.Errorf("%s attempt %d: number %d at +%v", url, i+1, a.Attempt, a.CreatedAt.Sub(t0))
				}
				last := i == len(as)-1
				if a.WillRetry == last {
					t.Errorf("%s attempt %d: will_retry %t", url, i+1, a.WillRetry)
				}
			}
		}
		if last := byURL[rcv.srv.URL+"/flaky"][5]; last.Result != "ok" || last.StatusCode != 200 {
			t.Errorf("flaky's last attempt = %+v", last)
		}
		if last := byURL[rcv.srv.URL+"/down"][5]; last.Result != "http_error" || last.StatusCode != 500 || last.Response != "/DOWN" {
			t.Errorf("down's last attempt = %+v", last)
		}
		if failed := e.attempts(store.WebhookAttemptFilter{Failed: true}); len(failed) != 11 {
			t.Errorf("failed attempts = %d, want 11", len(failed))
		}
	})
}

// TestTenThousandRequestsDrain: afterwards the stream, the inflight hash,
// the retry set and the request rows are all empty.
func TestTenThousandRequestsDrain(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	rcv := newReceiver(t, func(string, int) int { return 204 })
	e.add(rcv.srv.URL+"/a", n/2)
	e.add(rcv.srv.URL+"/b", n-n/2)
	e.start(webhookworker.Options{})
	waitFor(t, 5*time.Minute, "every request to be delivered", e.drained)
	if got := rcv.count("/a") + rcv.count("/b"); got != n {
		t.Errorf("receiver got %d requests, want %d", got, n)
	}
	if hooks, _ := s.Webhooks(context.Background(), e.server.ID); hooks[0].LastUsedAt.IsZero() {
		t.Error("last_used_at not stamped")
	}
}

// TestHangingReceiverDoesNotStallOthers: a receiver that never answers
// holds at most its share of slots; a healthy one on another port gets
// all of its requests delivered while the hanging one's are still pending.
func TestHangingReceiverDoesNotStallOthers(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	ok := newReceiver(t, func(string, int) int { return 200 })
	slow := e.add(hang.URL+"/slow", 300)
	e.add(ok.srv.URL+"/fast", 300)
	e.start(webhookworker.Options{MaxInFlight: 32, PerDestination: 4})
	// Serially the hanging receiver alone would take 300 x 5 s / 4 slots.
	waitFor(t, 30*time.Second, "the healthy receiver's requests", func() bool { return ok.count("/fast") == 300 })
	waitFor(t, 10*time.Second, "the healthy receiver's attempts to be recorded", func() bool {
		n := 0
		for _, a := range e.attempts(store.WebhookAttemptFilter{}) {
			if a.Result == "ok" {
				n++
			}
		}
		return n == 300
	})
	if left := e.pending(); left < 250 {
		t.Errorf("only %d of the hanging receiver's 300 requests are pending", left)
	}
	// Parked work comes back spread at about the pace of the receiver's
	// slots (4 per 5 s timeout), not all at once.
	locks, err := s.WebhookRequestLocks(context.Background(), slow)
	if err != nil {
		t.Fatal(err)
	}
	// A request whose attempt timed out (a slow machine lets the first
	// attempts end before this check) was retried, not parked.
	reqs, err := s.WebhookRequests(context.Background(), slow)
	if err != nil {
		t.Fatal(err)
	}
	tried := map[int64]bool{}
	for _, r := range reqs {
		tried[r.ID] = r.Attempts > 0
	}
	var first, last time.Time
	parked := 0
	for _, l := range locks {
		if l.LockedBy != "" || tried[l.ID] {
			continue
		}
		parked++
		if first.IsZero() || l.RetryAfter.Before(first) {
			first = l.RetryAfter
		}
		if l.RetryAfter.After(last) {
			last = l.RetryAfter
		}
	}
	if parked < 200 || last.Sub(first) < time.Duration(parked/4-1)*5*time.Second {
		t.Errorf("%d parked requests due between %v and %v: not spread", parked, first, last)
	}
}

// TestEntriesWithoutWorkAreAcked: an entry whose row is gone, or locked by
// a live claim, is acked without an attempt.
func TestEntriesWithoutWorkAreAcked(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	rcv := newReceiver(t, func(string, int) int { return 200 })
	ids := e.add(rcv.srv.URL+"/x", 2)
	ctx := context.Background()
	now := time.Now()
	if got, err := s.ClaimWebhookRequests(ctx, ids[:1], "someone-else", now, now.Add(time.Hour)); err != nil || len(got) != 1 {
		t.Fatal(err)
	}
	if err := e.queue.Enqueue(ctx, queue.Webhooks, queue.Job{ID: 987654321}); err != nil {
		t.Fatal(err)
	}
	e.start(webhookworker.Options{})
	waitFor(t, 10*time.Second, "the stream to empty", func() bool {
		st, err := e.queue.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ws, _ := st.Stream(queue.Webhooks)
		return ws.Length == 0 && ws.Pending == 0 && st.Inflight == 0 && e.pending() == 1
	})
	if rcv.count("/x") != 1 {
		t.Errorf("receiver hits = %d, want 1 (the locked request is not sent)", rcv.count("/x"))
	}
}

// TestPermanentFailureIsGivenUpAtOnce: a payload that cannot be sent is
// not retried.
func TestPermanentFailureIsGivenUpAtOnce(t *testing.T) {
	s := storetest.SQLite(t)
	e := newEnv(t, s)
	e.add("ftp://nowhere.test/", 1)
	e.start(webhookworker.Options{})
	waitFor(t, 10*time.Second, "the request to be given up", e.drained)
	log := e.attempts(store.WebhookAttemptFilter{})
	if len(log) != 1 || log[0].Result != "invalid" || log[0].WillRetry {
		t.Errorf("log = %+v", log)
	}
}
