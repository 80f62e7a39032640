package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestServerMessagesNewestFirstFilteredAndLimited(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test")
		finish(t, s, acc[1], store.StatusSent, false)
		other, err := s.CreateServer(ctx, "acme", store.NewServer{Name: "Other", Permalink: "other"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
			{ServerID: other.ID, Scope: store.ScopeOutgoing, RcptTo: "z@dest.test", MailFrom: "a@example.com"}}}}); err != nil {
			t.Fatal(err)
		}
		ids := func(ms []*store.Message) []int64 {
			var out []int64
			for _, m := range ms {
				out = append(out, m.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name   string
			status string
			limit  int
			want   []int64
		}{
			{"every status, newest first", "", 0, []int64{acc[2].MessageID, acc[1].MessageID, acc[0].MessageID}},
			{"limit keeps the newest", "", 2, []int64{acc[2].MessageID, acc[1].MessageID}},
			{"status filter", store.StatusSent, 10, []int64{acc[1].MessageID}},
			{"status nobody has", store.StatusBounced, 10, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ServerMessages(ctx, fx.Server.ID, tc.status, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if g := ids(got); !slices.Equal(g, tc.want) {
					t.Fatalf("ids = %v, want %v", g, tc.want)
				}
			})
		}
	})
}

func TestQueuedForMessage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test")
		finish(t, s, acc[1], store.StatusSent, false)
		q, err := s.QueuedForMessage(ctx, acc[0].MessageID)
		if err != nil || q.ID != acc[0].QueuedID || q.Domain != "dest.test" || q.Scope != store.ScopeOutgoing {
			t.Fatalf("queued row of a queued message = %+v, %v", q, err)
		}
		if q, err := s.QueuedForMessage(ctx, acc[1].MessageID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("queued row of a sent message = %+v, %v; want ErrNotFound", q, err)
		}
	})
}
