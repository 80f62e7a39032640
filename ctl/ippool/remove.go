package ippool

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// RemoveOptions are the parsed arguments of `ip-pool rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Name    string
}

// Deleted is the --json output of `ip-pool rm`.
type Deleted struct {
	Deleted string `json:"deleted"`
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm NAME",
		Aliases:           []string{"remove"},
		Short:             "Remove an IP pool with its addresses and rules; servers using it fall back to the default",
		Args:              cli.ExactArgs(1, "NAME"),
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRemove(cmd.Context(), o)
		},
	}
}

func runRemove(ctx context.Context, o *RemoveOptions) error {
	st, p, err := Find(ctx, o.Factory, o.Name)
	if err != nil {
		return err
	}
	if err := st.DeleteIPPool(ctx, p.Name); err != nil {
		return err
	}
	return o.Factory.Render(Deleted{Deleted: p.Name}, func(w io.Writer) { fmt.Fprintf(w, "Removed %s.\n", p.Name) })
}
