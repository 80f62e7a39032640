// Package upgrade is `postalctl upgrade`: it applies pending schema
// migrations under a lock, idempotently, and reports what it did. Exit codes:
// 0 applied or already current, 1 a migration failed (nothing of it is
// applied), 2 usage or configuration error.
package upgrade

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// Options are the parsed flags.
type Options struct {
	Factory *cli.Factory
	DryRun  bool
}

// Result is the --json output.
type Result struct {
	Status  string                   `json:"status"` // "applied", "current", "would-apply" or "failed"
	From    int                      `json:"from"`
	To      int                      `json:"to"`
	Latest  int                      `json:"latest"`
	DryRun  bool                     `json:"dry_run"`
	Applied []store.AppliedMigration `json:"applied"`
	Error   string                   `json:"error,omitempty"`
}

// NewCmd returns the upgrade command; runF replaces the action in tests.
func NewCmd(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Apply pending database schema migrations",
		Long: "Apply every pending schema migration, each in its own transaction, under a lock so that\n" +
			"concurrent runs on several hosts are safe. Running it again is harmless.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "list pending migrations without applying them")
	return cmd
}

// Run performs the upgrade.
func Run(ctx context.Context, o *Options) error {
	f := o.Factory
	st, err := f.RawStore(ctx)
	if err != nil {
		return err
	}
	res, err := st.Migrate(ctx, o.DryRun)
	out := Result{From: res.From, To: res.To, Latest: len(store.Migrations()), DryRun: o.DryRun, Applied: res.Applied}
	if out.Applied == nil {
		out.Applied = []store.AppliedMigration{}
	}
	switch {
	case err != nil:
		out.Status = "failed"
		out.Error = err.Error()
	case o.DryRun:
		out.Status = "would-apply"
		if len(res.Applied) == 0 {
			out.Status = "current"
		}
	case len(res.Applied) == 0:
		out.Status = "current"
	default:
		out.Status = "applied"
	}
	if rerr := f.Render(out, func(w io.Writer) { printHuman(w, out) }); rerr != nil {
		return rerr
	}
	if err != nil {
		if f.JSON {
			return cli.ErrSilent
		}
		return err
	}
	return nil
}

func printHuman(w io.Writer, r Result) {
	switch r.Status {
	case "current":
		fmt.Fprintf(w, "Schema is current (version %d).\n", r.To)
		return
	case "would-apply":
		fmt.Fprintf(w, "Schema at version %d; would apply:\n", r.From)
	case "applied":
		fmt.Fprintf(w, "Upgraded schema from version %d to %d:\n", r.From, r.To)
	case "failed":
		fmt.Fprintf(w, "Schema at version %d after failure; applied before it:\n", r.To)
	}
	for _, m := range r.Applied {
		if r.DryRun {
			fmt.Fprintf(w, "  %04d\t%s\n", m.Version, m.Name)
		} else {
			fmt.Fprintf(w, "  %04d\t%s\t%s\n", m.Version, m.Name, m.Duration.Round(100_000))
		}
	}
}
