package queuecmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/redisconn"
)

// ResetOptions are the parsed arguments of `queue reset`.
type ResetOptions struct {
	Factory *cli.Factory
	Yes     bool
}

// Reset is the --json output of `queue reset`.
type Reset struct {
	// Prefix is redis.key_prefix.
	Prefix string `json:"prefix"`
	// Installation is this database's installation id, now the prefix's
	// owner; FormerOwner is the one recorded before ("" for none).
	Installation string `json:"installation"`
	FormerOwner  string `json:"former_owner"`
	// Deleted counts the keys deleted.
	Deleted int `json:"deleted"`
}

func newResetCmd(f *cli.Factory, runF func(context.Context, *ResetOptions) error) *cobra.Command {
	o := &ResetOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Delete every Redis key under redis.key_prefix and claim the prefix for this installation",
		Long: "Empty the Redis side of the queue: every key under redis.key_prefix (streams, retry set, inflight\n" +
			"hash, dead letters, leases, counters) is deleted and the prefix is recorded as this database's.\n" +
			"Nothing in SQL changes; postald rebuilds dispatch from the queued rows (reconciliation), as after a\n" +
			"Redis that lost its keys. Use it when postald refuses to start because another installation owns the\n" +
			"prefix and that installation is gone for good; while it still runs, its processes stop at their next\n" +
			"check. Asks for confirmation unless --yes; without a terminal, --yes is required.",
		Args: cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runReset(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runReset(ctx context.Context, o *ResetOptions) error {
	f := o.Factory
	st, err := f.Store(ctx)
	if err != nil {
		return err
	}
	installation, err := st.InstallationID(ctx)
	if err != nil {
		return err
	}
	rdb, keys, err := f.Redis()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	former, err := redisconn.PrefixOwner(rctx, rdb, keys)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("delete every Redis key under %s", keys.Prefix())
	if former != "" && former != installation {
		what += fmt.Sprintf(" (owned by installation %s, not this one)", former)
	}
	if err := confirm(f, o.Yes, what); err != nil {
		return err
	}
	// Deleting a large prefix may take longer than a read.
	dctx, cancel := context.WithTimeout(ctx, 10*redisTimeout)
	defer cancel()
	n, err := redisconn.ResetPrefix(dctx, rdb, keys, installation)
	if err != nil {
		return fmt.Errorf("deleted %d keys, then: %w", n, err)
	}
	out := Reset{Prefix: keys.Name(), Installation: installation, FormerOwner: former, Deleted: n}
	return f.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "Deleted %d keys under %s; the prefix now belongs to installation %s.\n", n, keys.Prefix(), installation)
		fmt.Fprintln(w, "postald dispatches the queued rows again within requeuer.reconcile_interval.")
	})
}
