package ippool

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// ListOptions are the parsed arguments of `ip-pool ls`.
type ListOptions struct {
	Factory *cli.Factory
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List IP pools",
		Args:    cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
}

func runList(ctx context.Context, o *ListOptions) error {
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	pools, err := st.IPPools(ctx)
	if err != nil {
		return err
	}
	return o.Factory.Render(pools, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tDEFAULT\tCREATED")
		for _, p := range pools {
			fmt.Fprintf(w, "%s\t%t\t%s\n", p.Name, p.Default, cli.FormatTime(p.CreatedAt))
		}
	})
}
