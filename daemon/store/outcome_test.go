package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// claimAll queues one outgoing message per recipient and claims the rows as owner.
func claimAll(t *testing.T, s *store.Store, fx storetest.Fixture, owner string, rcpts ...string) []*store.QueuedMessage {
	t.Helper()
	ctx := context.Background()
	acc := queueOutgoing(t, s, fx, rcpts...)
	ids := make([]int64, len(acc))
	for i, a := range acc {
		ids[i] = a.QueuedID
	}
	now := time.Now()
	rows, err := s.ClaimQueued(ctx, ids, owner, now.Add(time.Second), now.Add(time.Hour))
	if err != nil || len(rows) != len(ids) {
		t.Fatalf("claim: %d rows, %v", len(rows), err)
	}
	return rows
}

func bounceFor(fx storetest.Fixture, to string) store.Submission {
	return store.Submission{Raw: []byte("Subject: failed\r\n\r\nbounce\r\n"), Messages: []store.NewMessage{{
		ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: to, MailFrom: "MAILER-DAEMON@rp.test",
		Bounce: true, Queue: true, QueueDomain: "example.com"}}}
}

func TestCommitOutcomesWritesEffectsOnlyWithTheirOutcome(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		rows := claimAll(t, s, fx, "w", "gone@dest.test", "late@dest.test")
		fx1 := store.Effects{
			Suppress: []store.NewSuppression{{ServerID: fx.Server.ID, Address: "Gone@dest.test", Reason: "hard fail",
				KeepUntil: time.Now().Add(time.Hour)}},
			Bounces: []store.Submission{bounceFor(fx, "sender@example.com")},
			Webhooks: []store.NewWebhookRequest{{ServerID: fx.Server.ID, URL: "https://hooks.test/", Event: "MessageDeliveryFailed",
				Payload: `{"status":"HardFail","details":"Rejected.","output":""}`}},
		}
		failed := store.HardFail(rows[0], store.NewDelivery{Details: "Rejected."}).With(fx1)
		// The second row's lock was lost: neither it nor its effects apply.
		lost := store.HardFail(&store.QueuedMessage{ID: rows[1].ID, MessageID: rows[1].MessageID, LockedBy: "someone-else"},
			store.NewDelivery{}).With(store.Effects{
			Suppress: []store.NewSuppression{{ServerID: fx.Server.ID, Address: "late@dest.test", Reason: "x", KeepUntil: time.Now().Add(time.Hour)}},
			Webhooks: []store.NewWebhookRequest{{ServerID: fx.Server.ID, URL: "https://hooks.test/", Event: "MessageDeliveryFailed", Payload: "{}"}},
		})
		res, err := s.CommitOutcomes(ctx, []store.Outcome{failed, lost})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Applied[0] || res.Applied[1] || res.Fallback[0] != "" || res.Failed[0] != nil {
			t.Fatalf("applied %v fallback %q failed %v", res.Applied, res.Fallback, res.Failed)
		}
		sup, err := s.ServerSuppressions(ctx, fx.Server.ID)
		if err != nil || len(sup) != 1 || sup[0].Address != "gone@dest.test" {
			t.Fatalf("suppressions %+v, %v; want only gone@dest.test", sup, err)
		}
		if len(res.Webhooks) != 1 {
			t.Fatalf("webhook requests %v, want 1", res.Webhooks)
		}
		reqs, err := s.WebhookRequests(ctx, res.Webhooks)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("webhook rows %+v, %v", reqs, err)
		}
		if len(res.Queued) != 1 || res.Queued[0].Scope != store.ScopeOutgoing || res.Queued[0].Domain != "example.com" {
			t.Fatalf("queued %+v, want the bounce", res.Queued)
		}
		ds, _ := s.Deliveries(ctx, rows[0].MessageID)
		want := " Bounce sent to sender (see message <msg:" + itoa(res.Queued[0].MessageID) + ">)."
		if len(ds) != 1 || !strings.HasSuffix(ds[0].Details, want) {
			t.Fatalf("deliveries %+v, want details ending %q", ds, want)
		}
		// The event quotes the details as recorded, bounce included.
		var p struct{ Details string }
		if err := json.Unmarshal([]byte(reqs[0].Payload), &p); err != nil || p.Details != ds[0].Details {
			t.Fatalf("payload %s (%v), want details %q", reqs[0].Payload, err, ds[0].Details)
		}
		if ds, _ := s.Deliveries(ctx, rows[1].MessageID); len(ds) != 0 {
			t.Fatalf("lost outcome wrote deliveries %+v", ds)
		}
	})
}

func TestCommitOutcomesFallsBackRowByRow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		rows := claimAll(t, s, fx, "w", "ok@dest.test", "sent@dest.test", "later@dest.test")
		// A server that does not exist: the database refuses the effect
		// (foreign key), which makes the whole outcome unwritable.
		const noServer = 987654321
		outs := []store.Outcome{
			store.Sent(rows[0], store.NewDelivery{Output: "250 ok"}),
			store.Sent(rows[1], store.NewDelivery{Output: "250 ok"}).With(store.Effects{
				Suppress: []store.NewSuppression{{ServerID: noServer, Address: "x@dest.test", KeepUntil: time.Now().Add(time.Hour)}}}),
			store.SoftFail(rows[2], time.Now().Add(time.Hour), store.NewDelivery{Output: "451 later"}).With(store.Effects{
				Webhooks: []store.NewWebhookRequest{{ServerID: noServer, URL: "https://h.test/", Event: "MessageDelayed", Payload: "{}"}}}),
		}
		res, err := s.CommitOutcomes(ctx, outs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range outs {
			if !res.Applied[i] || res.Failed[i] != nil {
				t.Fatalf("outcome %d: applied %v failed %v", i, res.Applied[i], res.Failed[i])
			}
		}
		if res.Fallback[0] != "" || res.Fallback[1] == "" || res.Fallback[2] == "" {
			t.Fatalf("fallback reasons %q: want the second and third only", res.Fallback)
		}
		if len(res.Webhooks) != 0 {
			t.Fatalf("webhooks %v from refused outcomes", res.Webhooks)
		}
		// The good row is recorded as given.
		if m, _ := s.Message(ctx, rows[0].MessageID); m.Status != store.StatusSent {
			t.Errorf("good row: status %s", m.Status)
		}
		// The delivered message stays Sent and is never retried; the
		// soft-failed one ends HardFail; both say why.
		for i, want := range map[int]string{1: store.StatusSent, 2: store.StatusHardFail} {
			m, _ := s.Message(ctx, rows[i].MessageID)
			ds, _ := s.Deliveries(ctx, rows[i].MessageID)
			if m.Status != want || len(ds) != 1 || ds[0].Status != store.StatusError || !strings.Contains(ds[0].Details, "could not be recorded") {
				t.Errorf("row %d: status %s deliveries %+v; want %s with an Error delivery", i, m.Status, ds, want)
			}
		}
		left, err := s.QueuedByIDs(ctx, []int64{rows[0].ID, rows[1].ID, rows[2].ID})
		if err != nil || len(left) != 0 {
			t.Fatalf("queued rows left %+v, %v; want none (nothing is sent again)", left, err)
		}
		if sup, _ := s.ServerSuppressions(ctx, fx.Server.ID); len(sup) != 0 {
			t.Errorf("suppressions %+v", sup)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSendLimitEventsFireOncePerCrossing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		req := func(event string) []store.NewWebhookRequest {
			return []store.NewWebhookRequest{{ServerID: fx.Server.ID, URL: "https://h.test/", Event: event, Payload: "{}"}}
		}
		for i, step := range []struct {
			volume                int64
			approaching, exceeded int
		}{
			{5, 0, 0}, {9, 1, 0}, {9, 0, 0}, {10, 0, 1}, {12, 0, 0}, {8, 0, 0}, {10, 1, 1},
		} {
			row := claimAll(t, s, fx, "w", fmt.Sprintf("r%d@dest.test", i))[0]
			out := store.Sent(row, store.NewDelivery{}).With(store.Effects{SendLimit: &store.SendLimit{ServerID: fx.Server.ID,
				Volume: step.volume, Limit: 10, Approaching: req("SendLimitApproaching"), Exceeded: req("SendLimitExceeded")}})
			res, err := s.CommitOutcomes(ctx, []store.Outcome{out})
			if err != nil || !res.Applied[0] {
				t.Fatalf("step %d: %+v, %v", i, res, err)
			}
			reqs, err := s.WebhookRequests(ctx, res.Webhooks)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, r := range reqs {
				got[r.Event]++
			}
			if got["SendLimitApproaching"] != step.approaching || got["SendLimitExceeded"] != step.exceeded {
				t.Errorf("volume %d (step %d): events %v, want approaching %d exceeded %d", step.volume, i, got, step.approaching, step.exceeded)
			}
		}
	})
}

// A batch of outcomes records exactly what the same outcomes record one at
// a time: the batch is written in a few statements (one DELETE per owner,
// one UPDATE per distinct change, multi-row deliveries), one at a time row
// by row.
func TestCommitOutcomesBatchRecordsWhatOneByOneRecords(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		now := time.Now()
		outcomes := func(rows, other []*store.QueuedMessage) []store.Outcome {
			lost := *rows[6]
			lost.LockedBy = "not-the-owner"
			return []store.Outcome{
				store.Sent(rows[0], store.NewDelivery{Output: "250 ok", LogID: "L0", Time: 0.5, SentWithSSL: true}),
				store.Sent(rows[1], store.NewDelivery{Output: "250 ok", LogID: "L1"}),
				store.HardFail(rows[2], store.NewDelivery{Details: "Rejected.", Output: "550 no"}),
				store.SoftFail(rows[3], now.Add(time.Hour), store.NewDelivery{Output: "451 later"}),
				store.Hold(rows[4], now.Add(24*time.Hour), "Held by a rule."),
				store.HoldUntil(rows[5], now.Add(24*time.Hour), now.Add(time.Hour), "Send limit."),
				store.Sent(&lost, store.NewDelivery{Output: "250 ok"}),
				store.Retry(rows[7], now.Add(time.Minute), "internal error"),
				store.Drop(rows[8]),
				store.Sent(other[0], store.NewDelivery{Output: "250 other"}),
				store.Sent(rows[9], store.NewDelivery{Output: "250 ok", LogID: "L9"}).With(store.Effects{
					Webhooks: []store.NewWebhookRequest{{ServerID: fx.Server.ID, URL: "https://h.test/", Event: "MessageSent", Payload: "{}"}}}),
			}
		}
		rcpts := func(tag string) []string {
			var out []string
			for i := range 10 {
				out = append(out, tag+strconv.Itoa(i)+"@dest.test")
			}
			return out
		}
		type state struct {
			Status, Details string
			Held            bool
			Attempt         bool
			Deliveries      []string
			Queued          string
		}
		snapshot := func(rows []*store.QueuedMessage) []state {
			var out []state
			for _, r := range rows {
				m, err := s.Message(ctx, r.MessageID)
				if err != nil {
					t.Fatal(err)
				}
				st := state{Status: m.Status, Details: m.Details, Held: m.Held, Attempt: !m.LastDeliveryAttempt.IsZero()}
				ds, _ := s.Deliveries(ctx, r.MessageID)
				for _, d := range ds {
					st.Deliveries = append(st.Deliveries, fmt.Sprintf("%s|%s|%s|%v|%s|%v", d.Status, d.Details, d.Output, d.SentWithSSL, d.LogID, d.Time))
				}
				if q, _ := s.QueuedByIDs(ctx, []int64{r.ID}); len(q) == 1 {
					due := "now"
					if q[0].RetryAfter.After(now.Add(time.Second)) {
						due = q[0].RetryAfter.Sub(now).String()
					}
					st.Queued = fmt.Sprintf("attempts %d due %s locked %v", q[0].Attempts, due, q[0].LockedBy != "")
				}
				out = append(out, st)
			}
			return out
		}
		// Batch.
		rowsA := claimAll(t, s, fx, "wa", rcpts("a")...)
		otherA := claimAll(t, s, fx, "wa2", "oa@dest.test")
		resA, err := s.CommitOutcomes(ctx, outcomes(rowsA, otherA))
		if err != nil {
			t.Fatal(err)
		}
		// One at a time.
		rowsB := claimAll(t, s, fx, "wb", rcpts("b")...)
		otherB := claimAll(t, s, fx, "wb2", "ob@dest.test")
		var appliedB []bool
		hooksB := 0
		for _, o := range outcomes(rowsB, otherB) {
			res, err := s.CommitOutcomes(ctx, []store.Outcome{o})
			if err != nil {
				t.Fatal(err)
			}
			appliedB = append(appliedB, res.Applied[0])
			hooksB += len(res.Webhooks)
		}
		if fmt.Sprint(resA.Applied) != fmt.Sprint(appliedB) || len(resA.Webhooks) != hooksB || hooksB != 1 {
			t.Fatalf("applied %v (webhooks %d) in a batch, %v (webhooks %d) one by one", resA.Applied, len(resA.Webhooks), appliedB, hooksB)
		}
		if resA.Applied[6] {
			t.Fatal("the outcome of a lost lock applied")
		}
		a, b := snapshot(append(rowsA, otherA...)), snapshot(append(rowsB, otherB...))
		for i := range a {
			if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
				t.Errorf("row %d: batch %+v, one by one %+v", i, a[i], b[i])
			}
		}
		if a[0].Status != store.StatusSent || len(a[0].Deliveries) != 1 || a[3].Queued == "" || a[8].Queued != "" {
			t.Fatalf("unexpected batch result %+v", a)
		}
	})
}
