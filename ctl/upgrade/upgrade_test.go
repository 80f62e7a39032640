package upgrade_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/upgrade"
	"github.com/postalgo/postal/daemon/store"
)

func newCmd(f *cli.Factory) *cobra.Command { return upgrade.NewCmd(f, nil) }

func TestUpgradeAppliesThenIsCurrent(t *testing.T) {
	for _, backend := range clitest.Backends() {
		t.Run(backend, func(t *testing.T) {
			e := clitest.New(t, backend, false)
			latest := len(store.Migrations())

			dry := e.Run(t, newCmd, "upgrade", "--dry-run", "--json")
			var r upgrade.Result
			if err := json.Unmarshal([]byte(dry.Out), &r); err != nil || dry.Code != 0 {
				t.Fatalf("dry run: code %d, %v, out %q", dry.Code, err, dry.Out)
			}
			if r.Status != "would-apply" || len(r.Applied) != latest || r.To != latest {
				t.Fatalf("dry run result = %+v", r)
			}

			first := e.Run(t, newCmd, "upgrade")
			if first.Code != 0 || !strings.Contains(first.Out, "Upgraded schema from version 0 to") || !strings.Contains(first.Out, "0001") {
				t.Fatalf("first upgrade: code %d out %q err %q", first.Code, first.Out, first.Err)
			}
			second := e.Run(t, newCmd, "upgrade", "--json")
			r = upgrade.Result{}
			if err := json.Unmarshal([]byte(second.Out), &r); err != nil || second.Code != 0 {
				t.Fatalf("second upgrade: code %d, %v", second.Code, err)
			}
			if r.Status != "current" || len(r.Applied) != 0 || r.From != latest {
				t.Fatalf("second upgrade = %+v, want current", r)
			}
		})
	}
}

// Two upgrades racing on one database: both exit 0 and each migration is
// applied exactly once between them.
func TestConcurrentUpgradesApplyOnce(t *testing.T) {
	for _, backend := range clitest.Backends() {
		t.Run(backend, func(t *testing.T) {
			e := clitest.New(t, backend, false)
			var wg sync.WaitGroup
			results := make([]clitest.Result, 2)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = e.Run(t, newCmd, "upgrade", "--json")
				}()
			}
			wg.Wait()
			applied := 0
			for i, res := range results {
				var r upgrade.Result
				if err := json.Unmarshal([]byte(res.Out), &r); err != nil || res.Code != 0 {
					t.Fatalf("upgrade %d: code %d, %v, out %q err %q", i, res.Code, err, res.Out, res.Err)
				}
				applied += len(r.Applied)
			}
			if want := len(store.Migrations()); applied != want {
				t.Fatalf("migrations applied %d times in all, want %d", applied, want)
			}
		})
	}
}

func TestUpgradeErrors(t *testing.T) {
	e := clitest.New(t, "sqlite", false)
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"extra argument", []string{"upgrade", "now"}, cli.ExitUsage, "takes no arguments"},
		{"unknown flag", []string{"upgrade", "--fast"}, cli.ExitUsage, "unknown flag: --fast"},
		{"missing config", []string{"upgrade", "--config", "/nonexistent/postal.yml"}, cli.ExitUsage, "/nonexistent/postal.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.Run(t, newCmd, tt.args...)
			if res.Code != tt.code || res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err) {
				t.Fatalf("code %d err %v, want code %d containing %q", res.Code, res.RunErr, tt.code, tt.err)
			}
		})
	}
}
