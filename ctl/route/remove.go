package route

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// RemoveOptions are the parsed arguments of `route rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
	// Route is the route's UUID or NAME@DOMAIN.
	Route string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER UUID|NAME@DOMAIN",
		Aliases:           []string{"remove"},
		Short:             "Remove a route (and its endpoint when no other route uses it)",
		Args:              cli.ExactArgs(2, "ORG/SERVER and a route UUID or NAME@DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Route = args[0], args[1]
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
	r, err := find(ctx, st, srv.ID, o.Route)
	if err == nil {
		err = st.DeleteRoute(ctx, srv.ID, r.UUID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("route %s not found on %s; list routes with `postalctl route ls %s`", o.Route, o.Path, o.Path)
	}
	if err != nil {
		return err
	}
	return server.RenderDeleted(o.Factory, r.Address())
}
