package store_test

import (
	"context"
	"regexp"
	"sync"
	"testing"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// The first callers race to create the id on several connections; every
// one of them, and every later call, gets the one id that was stored.
func TestInstallationIDIsCreatedOnceAndKept(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ids := make([]string, 8)
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() { ids[i], errs[i] = s.InstallationID(ctx) })
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil {
				t.Fatalf("call %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("concurrent first calls disagree: %q and %q", ids[0], ids[i])
			}
		}
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(ids[0]) {
			t.Fatalf("id %q is not 32 hex digits", ids[0])
		}
		again, err := s.InstallationID(ctx)
		if err != nil || again != ids[0] {
			t.Fatalf("later call = %q, %v; want %q", again, err, ids[0])
		}
		other, err := storetest.SQLite(t).InstallationID(ctx)
		if err != nil || other == ids[0] {
			t.Fatalf("another database's id = %q, %v; want a different one", other, err)
		}
	})
}
