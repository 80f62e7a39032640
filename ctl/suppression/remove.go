package suppression

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
)

// RemoveOptions are the parsed arguments of `suppression rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
	Address string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER ADDRESS",
		Aliases:           []string{"remove"},
		Short:             "Lift the suppression of an address",
		Args:              cli.ExactArgs(2, "ORG/SERVER ADDRESS"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Address = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRemove(cmd.Context(), o)
		},
	}
}

func runRemove(ctx context.Context, o *RemoveOptions) error {
	addr, err := address(o.Address)
	if err != nil {
		return err
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	found, err := st.RemoveSuppression(ctx, srv.ID, addr)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s is not suppressed on %s; list suppressions with `postalctl suppression ls %s`", addr, o.Path, o.Path)
	}
	return server.RenderDeleted(o.Factory, addr)
}
