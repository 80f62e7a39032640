package store

import (
	"context"
	"testing"
	"time"
)

// CommitOutcomesEachForTest records outs in one transaction with the
// per-outcome statements (commitEach) on every database, without
// CommitOutcomes' fallback: the reference the batch paths are compared with.
func (s *Store) CommitOutcomesEachForTest(ctx context.Context, outs []Outcome) (Committed, error) {
	c := Committed{Applied: make([]bool, len(outs))}
	tl := tally{}
	queued, hooks, err := s.commitTx(ctx, s.now(), outs, c.Applied, tl, false)
	if err != nil {
		return Committed{}, err
	}
	c.Queued, c.Webhooks, c.Counts = queued, hooks, tl.total()
	return c, nil
}

// CommitPipelinedForTest records outs with commitPipelined alone
// (PostgreSQL), without CommitOutcomes' fallback.
func (s *Store) CommitPipelinedForTest(ctx context.Context, outs []Outcome) (Committed, error) {
	c := Committed{Applied: make([]bool, len(outs))}
	tl := tally{}
	hooks, err := s.commitPipelined(ctx, s.now(), outs, c.Applied, tl)
	if err != nil {
		return Committed{}, err
	}
	c.Webhooks, c.Counts = hooks, tl.total()
	return c, nil
}

// SetPipelineCommitLimitForTest sets the bound of commitPipelined's last
// round trip until the test ends.
func SetPipelineCommitLimitForTest(t testing.TB, d time.Duration) {
	old := pipelineCommitLimit
	pipelineCommitLimit = d
	t.Cleanup(func() { pipelineCommitLimit = old })
}
