package store_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestInspectionIsRecordedWithItsOutcomeCappedAndCleaned(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		rows := claimAll(t, s, fx, "w", "a@dest.test", "b@dest.test")
		var checks []store.SpamCheck
		for i := range 150 {
			checks = append(checks, store.SpamCheck{Code: "RULE_\x00" + strings.Repeat("X", i), Score: float64(i),
				Description: strings.Repeat("d\xff", 400)})
		}
		checks[0].Score = math.NaN()
		in := &store.NewInspection{Spam: true, SpamScore: 12.5, Threat: true, ThreatDetails: "Eicar\x00" + strings.Repeat("x", 500),
			Checks: checks}
		held := store.Hold(rows[0], time.Now().Add(24*time.Hour), "held").With(store.Effects{Inspection: in})
		// A lost lock records nothing, its inspection included.
		lost := store.Drop(&store.QueuedMessage{ID: rows[1].ID, MessageID: rows[1].MessageID, LockedBy: "other"}).
			With(store.Effects{Inspection: &store.NewInspection{SpamScore: 1}})
		if _, err := s.CommitOutcomes(ctx, []store.Outcome{held, lost}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Inspections(ctx, []int64{rows[0].MessageID, rows[1].MessageID})
		if err != nil {
			t.Fatal(err)
		}
		a := got[rows[0].MessageID]
		if !a.Inspected || !a.Spam || a.SpamScore != 12.5 || !a.Threat || !strings.HasPrefix(a.ThreatDetails, "Eicar") ||
			len(a.ThreatDetails) > 256 || strings.Contains(a.ThreatDetails, "\x00") {
			t.Errorf("recorded %+v", a)
		}
		if b := got[rows[1].MessageID]; b.Inspected {
			t.Errorf("lost outcome's inspection recorded: %+v", b)
		}
		cs, err := s.SpamChecks(ctx, rows[0].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 100 {
			t.Fatalf("%d checks stored, want 100", len(cs))
		}
		for _, c := range cs {
			if len(c.Code) > 64 || len(c.Description) > 256 || !utf8.ValidString(c.Description) ||
				strings.Contains(c.Code, "\x00") || math.IsNaN(c.Score) {
				t.Fatalf("check not capped or cleaned: %+v", c)
			}
		}
		if cs[0].Score != 99 {
			t.Errorf("first check %+v, want the highest score first", cs[0])
		}

	})
}
