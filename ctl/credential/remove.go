package credential

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// RemoveOptions are the parsed arguments of `credential rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
	UUID    string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER UUID",
		Aliases:           []string{"remove"},
		Short:             "Remove a credential (its key stops working at once)",
		Args:              cli.ExactArgs(2, "ORG/SERVER UUID"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.UUID = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRemove(cmd.Context(), o)
		},
	}
}

func runRemove(ctx context.Context, o *RemoveOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	err = st.DeleteCredential(ctx, srv.ID, o.UUID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("credential %s not found on %s; list them with `postalctl credential ls %s`", o.UUID, o.Path, o.Path)
	}
	if err != nil {
		return err
	}
	return server.RenderDeleted(o.Factory, o.UUID)
}
