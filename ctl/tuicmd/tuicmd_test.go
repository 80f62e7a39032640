package tuicmd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/tuicmd"
)

func TestTUIRefusesWithoutTerminal(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	res := e.Run(t, func(f *cli.Factory) *cobra.Command { return tuicmd.NewCmd(f, nil) }, "tui")
	if res.Code != cli.ExitFailure || !errors.Is(res.RunErr, tuicmd.ErrNotTerminal) || res.Out != "" {
		t.Fatalf("exit %d, err %v, out %q; want exit 1 with ErrNotTerminal and no output", res.Code, res.RunErr, res.Out)
	}
	if strings.Contains(res.RunErr.Error(), "\n") {
		t.Errorf("error is not one line: %q", res.RunErr)
	}
}

func TestTUIOptions(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	tests := []struct {
		name     string
		args     []string
		code     int
		interval time.Duration
		err      string
	}{
		{"default interval", nil, 0, 2 * time.Second, ""},
		{"refresh flag", []string{"--refresh", "5s"}, 0, 5 * time.Second, ""},
		{"old interval flag", []string{"--interval", "5s"}, 0, 5 * time.Second, ""},
		{"refresh too short", []string{"--refresh", "10ms"}, cli.ExitUsage, 0, "--refresh must be at least 100ms"},
		{"extra argument", []string{"now"}, cli.ExitUsage, 0, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *tuicmd.Options
			res := e.Run(t, func(f *cli.Factory) *cobra.Command {
				return tuicmd.NewCmd(f, func(_ context.Context, o *tuicmd.Options) error { got = o; return nil })
			}, append([]string{"tui"}, tt.args...)...)
			if res.Code != tt.code {
				t.Fatalf("exit %d (%v), want %d", res.Code, res.RunErr, tt.code)
			}
			if tt.err != "" {
				if res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err) {
					t.Fatalf("err %v, want %q", res.RunErr, tt.err)
				}
				return
			}
			if got == nil || got.Interval != tt.interval {
				t.Fatalf("options = %+v, want interval %s", got, tt.interval)
			}
		})
	}
}
