package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// An Idempotency-Key is reserved once; the submission that stores the
// request's messages marks it done in its own transaction; a released key
// can be reserved again; expired and abandoned reservations are replaced.
func TestIdempotencyKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now()
		s.SetClock(func() time.Time { return now })
		fx := storetest.NewFixture(t, s, "example.com", "")

		rec, owned, err := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k1", "send/message", "h1")
		if err != nil || !owned || rec.ID == 0 {
			t.Fatalf("first reserve %+v %v %v", rec, owned, err)
		}
		again, owned, err := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k1", "send/message", "h1")
		if err != nil || owned || again.ID != rec.ID || again.Done || again.RequestHash != "h1" {
			t.Fatalf("second reserve %+v %v %v", again, owned, err)
		}
		acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), IdempotencyID: rec.ID, Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "f@example.com", MessageID: "m@x"},
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "b@dest.test", MailFrom: "f@example.com", MessageID: "m@x"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		done, _, err := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k1", "send/message", "h1")
		if err != nil || !done.Done || done.RawMessageID == 0 {
			t.Fatalf("after submission %+v %v", done, err)
		}
		msgs, err := s.MessagesOfRaw(ctx, done.RawMessageID)
		if err != nil || len(msgs) != 2 || msgs[0].ID != acc[0][0].MessageID || msgs[1].RcptTo != "b@dest.test" {
			t.Fatalf("messages of raw %v %v", msgs, err)
		}
		// Releasing a done key keeps it.
		if err := s.ReleaseIdempotencyKey(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		if r, owned, _ := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k1", "send/message", "h1"); owned || !r.Done {
			t.Fatalf("done key released: %+v", r)
		}
		// A pending key released is free again; an abandoned one is taken over.
		r2, _, _ := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k2", "send/raw", "h2")
		if err := s.ReleaseIdempotencyKey(ctx, r2.ID); err != nil {
			t.Fatal(err)
		}
		if _, owned, err := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k2", "send/raw", "h2"); err != nil || !owned {
			t.Fatalf("released key not free: %v %v", owned, err)
		}
		now = now.Add(10 * time.Minute)
		if _, owned, err := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k2", "send/raw", "h2"); err != nil || !owned {
			t.Fatalf("abandoned key not taken over: %v %v", owned, err)
		}
		if r, owned, _ := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k1", "send/message", "h1"); owned || !r.Done {
			t.Fatalf("done key taken over after 10 minutes: %+v", r)
		}
		// A day later every key is gone.
		now = now.Add(store.IdempotencyWindow)
		if _, owned, err := s.ReserveIdempotencyKey(ctx, fx.Server.ID, "k1", "send/message", "other"); err != nil || !owned {
			t.Fatalf("expired key not replaced: %v %v", owned, err)
		}
		n, err := s.PruneIdempotencyKeys(ctx, now.Add(-time.Minute))
		if err != nil || n != 1 { // k2; k1 was just re-reserved
			t.Fatalf("pruned %d, %v", n, err)
		}
		if err := s.CompleteIdempotencyKey(ctx, r2.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// API lookups: the credential's server and organisation state, and
// messages scoped to a server.
func TestAPILookups(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		key := "an-api-key-of-24-chars-x"
		if _, err := s.CreateCredential(ctx, fx.Server.ID, store.NewCredential{Type: store.CredentialAPI, Name: "api", Key: key}); err != nil {
			t.Fatal(err)
		}
		auth, err := s.APICredential(ctx, key)
		if err != nil || auth.Server.ID != fx.Server.ID || auth.OrganizationSuspended {
			t.Fatalf("auth %+v %v", auth, err)
		}
		if _, err := s.APICredential(ctx, fx.SMTPKey); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SMTP key as API key: %v", err)
		}
		if err := s.SetOrganizationSuspended(ctx, fx.Org.ID, true, "r"); err != nil {
			t.Fatal(err)
		}
		if auth, _ := s.APICredential(ctx, key); !auth.OrganizationSuspended {
			t.Fatal("organisation suspension not seen")
		}
		if err := s.SetDomainUseForAny(ctx, fx.Domain.ID, true); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.DomainByID(ctx, fx.Domain.ID); !d.UseForAny {
			t.Fatal("use_for_any not set")
		}
		acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "f@example.com"}}}})
		if err != nil {
			t.Fatal(err)
		}
		m, in, err := s.ServerMessage(ctx, fx.Server.ID, acc[0][0].MessageID)
		if err != nil || m.RcptTo != "a@dest.test" || in.Inspected || in.SpamScore != 0 {
			t.Fatalf("server message %+v %+v %v", m, in, err)
		}
		if _, _, err := s.ServerMessage(ctx, fx.Server.ID+1, acc[0][0].MessageID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another server's message: %v", err)
		}
	})
}
