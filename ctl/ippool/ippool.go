// Package ippool is `postalctl ip-pool`: add, list and remove IP pools,
// the named sets of sending addresses that servers and rules send through.
package ippool

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the ip-pool command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "ip-pool", Short: "Manage IP pools"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// Find opens the store and looks up the pool called name, or returns an
// error that says how to list pools.
func Find(ctx context.Context, f *cli.Factory, name string) (*store.Store, *store.IPPool, error) {
	st, err := f.Store(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := st.IPPool(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("IP pool %s not found; list pools with `postalctl ip-pool ls`", name)
	}
	if err != nil {
		return nil, nil, err
	}
	return st, p, nil
}

// Complete completes the first argument with pool names.
func Complete(f *cli.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		st, err := f.Store(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		pools, err := st.IPPools(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, p := range pools {
			out = append(out, p.Name)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
