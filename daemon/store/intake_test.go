package store_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// TestInsertSubmissionsStoresEveryField: every field of a NewMessage comes
// back from Message as given, a submission naming a stored body shares it,
// the accepted ids name the rows in order, and bodies that together exceed
// one statement's share (PostgreSQL splits them) are all stored.
func TestInsertSubmissionsStoresEveryField(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		hold := time.UnixMicro(time.Now().Add(time.Hour).UnixMicro())
		full := store.NewMessage{ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "Full@Dest.test",
			MailFrom: "a@example.com", Subject: "everything", MessageID: "<x@y>", Tag: "tag1", Token: "tok123",
			Status: store.StatusHeld, Held: true, HoldExpiry: hold, Bounce: true, DomainID: f.Domain.ID,
			CredentialID: f.Credential.ID, EndpointType: "HTTPEndpoint", EndpointID: 7, ReceivedWithSSL: true,
			Queue: true, QueueDomain: "Dest.TEST"}
		bare := store.NewMessage{ServerID: f.Server.ID, Scope: store.ScopeIncoming, RcptTo: "in@example.com", MailFrom: "b@c.test"}
		big := bytes.Repeat([]byte("x"), 3<<20)
		var subs []store.Submission
		for i := range 4 { // 12 MB of bodies
			subs = append(subs, store.Submission{Raw: append([]byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)), big...),
				Messages: []store.NewMessage{bare, {ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: fmt.Sprintf("r%d@dest.test", i),
					MailFrom: "a@example.com", Queue: true, QueueDomain: "dest.test"}}})
		}
		subs = append(subs, store.Submission{Raw: []byte("Subject: full\r\n\r\nbody"), Messages: []store.NewMessage{full}})
		acc, err := s.InsertSubmissions(ctx, subs)
		if err != nil {
			t.Fatal(err)
		}
		if len(acc) != 5 || len(acc[0]) != 2 || acc[0][0].QueuedID != 0 || acc[0][1].QueuedID == 0 {
			t.Fatalf("accepted = %+v", acc)
		}
		for i := range 4 {
			for j, a := range acc[i] {
				m, err := s.Message(ctx, a.MessageID)
				if err != nil || m.RcptTo != subs[i].Messages[j].RcptTo || m.Token != a.Token {
					t.Fatalf("submission %d message %d = %+v, %v", i, j, m, err)
				}
				raw, err := s.RawMessage(ctx, m.RawMessageID)
				if err != nil || !bytes.Equal(raw, subs[i].Raw) || m.Size != int64(len(subs[i].Raw)) {
					t.Fatalf("submission %d body: %d bytes (size %d), %v", i, len(raw), m.Size, err)
				}
			}
		}
		a := acc[4][0]
		m, err := s.Message(ctx, a.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		want := &store.Message{ID: a.MessageID, ServerID: f.Server.ID, Token: "tok123", Scope: store.ScopeOutgoing,
			RcptTo: "Full@Dest.test", MailFrom: "a@example.com", Subject: "everything", MessageID: "<x@y>", Tag: "tag1",
			Status: store.StatusHeld, Held: true, HoldExpiry: hold, Bounce: true, DomainID: f.Domain.ID,
			CredentialID: f.Credential.ID, EndpointType: "HTTPEndpoint", EndpointID: 7, RawMessageID: m.RawMessageID,
			Size: int64(len("Subject: full\r\n\r\nbody")), ReceivedWithSSL: true, Timestamp: m.Timestamp}
		if !reflect.DeepEqual(want, m) {
			t.Fatalf("stored message\n got %+v\nwant %+v", m, want)
		}
		q, err := s.QueuedByIDs(ctx, []int64{a.QueuedID})
		if err != nil || len(q) != 1 || q[0].MessageID != a.MessageID || q[0].Domain != "dest.test" || q[0].Scope != store.ScopeOutgoing {
			t.Fatalf("queued = %+v, %v", q, err)
		}
		// A submission naming a stored body shares it.
		shared, err := s.InsertSubmissions(ctx, []store.Submission{{RawMessageID: m.RawMessageID, Raw: []byte("Subject: full\r\n\r\nbody"),
			Messages: []store.NewMessage{bare}}})
		if err != nil {
			t.Fatal(err)
		}
		if sm, err := s.Message(ctx, shared[0][0].MessageID); err != nil || sm.RawMessageID != m.RawMessageID {
			t.Fatalf("shared body: %+v, %v", sm, err)
		}
	})
}

// TestInsertSubmissionsAllOrNothing: a batch one of whose rows the database
// refuses (a token already taken) stores none of its rows.
func TestInsertSubmissionsAllOrNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		m := store.NewMessage{ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "x@dest.test", MailFrom: "a@example.com",
			Queue: true, QueueDomain: "dest.test"}
		dup := m
		dup.Token = "taken"
		if _, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("a"), Messages: []store.NewMessage{dup}}}); err != nil {
			t.Fatal(err)
		}
		before, err := s.CountRows(ctx, "raw_messages")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("b"), Messages: []store.NewMessage{m}},
			{Raw: []byte("c"), Messages: []store.NewMessage{m, dup}}}); err == nil {
			t.Fatal("a batch with a duplicate token was stored")
		}
		for _, table := range []string{"raw_messages", "messages", "queued_messages"} {
			n, err := s.CountRows(ctx, table)
			if err != nil {
				t.Fatal(err)
			}
			if want := before; n != want {
				t.Fatalf("%s: %d rows after the failed batch, want %d", table, n, want)
			}
		}
		// The next batch stores as usual.
		if acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("d"), Messages: []store.NewMessage{m}}}); err != nil || acc[0][0].QueuedID == 0 {
			t.Fatalf("next batch: %+v, %v", acc, err)
		}
	})
}
