// Package tuicmd is `postalctl tui`: it opens the live operator console
// (package tui) over the configured database and Redis. It refuses, with a
// one-line error and exit code 1, when stdout is not a terminal; scripts use
// `postalctl status --json` and `postalctl queue --json` instead. A database
// or Redis that does not answer does not stop the console: it shows which
// side is down and keeps refreshing.
package tuicmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/tui"
	"github.com/postalgo/postal/tui/source"
)

// Options are the parsed arguments of `tui`.
type Options struct {
	Factory *cli.Factory
	// Interval is the time between refreshes.
	Interval time.Duration
}

// ErrNotTerminal is returned when stdout is not a terminal.
var ErrNotTerminal = errors.New("postalctl tui needs a terminal on stdout; in scripts use `postalctl status --json` or `postalctl queue --json`")

// NewCmd returns the tui command; runF replaces the action in tests.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{Factory: f, Interval: tui.DefaultInterval}
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Open the live console: processes, leases, queue and cron at a glance",
		Long: "Open a full-screen console that refreshes every --refresh: 1 the dashboard (health, processes,\n" +
			"leases, streams, last hour's throughput, top destinations, cron runs, webhook failures), 2 the\n" +
			"queue (R requeues dead letters), 3 cron, 4 messages (/ filters, H held ones, enter opens; R retry,\n" +
			"h hold, u release, c cancel, D delete, each confirmed with y) and 5 the queue's shape. Tab or 1-5\n" +
			"switch screens, ↑/↓ or the mouse wheel scroll, r refreshes, ? lists every key, q quits.\n" +
			"NO_COLOR turns colours off.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Interval < 100*time.Millisecond {
				return cli.Usagef("--refresh must be at least 100ms (got %s)", o.Interval)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.Interval, "refresh", o.Interval, "time between refreshes")
	cmd.Flags().DurationVar(&o.Interval, "interval", o.Interval, "time between refreshes (old name of --refresh)")
	_ = cmd.Flags().MarkHidden("interval") // the flag exists: this cannot fail
	return cmd
}

// Run opens the console and returns when the user quits or ctx ends.
func Run(ctx context.Context, o *Options) error {
	f := o.Factory
	if !f.IO.Terminal {
		return ErrNotTerminal
	}
	if _, err := f.Config(); err != nil {
		return err
	}
	rdb, keys, err := f.Redis()
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	lo := source.LiveOptions{Redis: rdb, Keys: keys, Now: f.Now}
	openCtx, cancel := context.WithTimeout(ctx, source.DefaultTimeout)
	st, err := f.RawStore(openCtx)
	cancel()
	if err != nil {
		lo.StoreErr = err
	} else {
		lo.Store = st
	}
	live := source.NewLive(lo)
	m := tui.New(ctx, live, tui.Options{Interval: o.Interval, Messages: live})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(f.IO.In), tea.WithOutput(f.IO.Out))
	if _, err := p.Run(); err != nil && !(errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil) {
		return fmt.Errorf("tui: %w", err)
	}
	return nil
}
