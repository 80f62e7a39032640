package trackdomain

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
)

// RemoveOptions are the parsed arguments of `track-domain rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER NAME.DOMAIN",
		Aliases:           []string{"remove"},
		Short:             "Remove a tracking domain",
		Args:              cli.ExactArgs(2, "ORG/SERVER NAME.DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
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
	t, err := find(ctx, st, srv.ID, o.Name)
	if err == nil {
		err = st.DeleteTrackDomain(ctx, srv.ID, t.UUID)
	}
	if err != nil {
		return notFound(o.Path, o.Name, err)
	}
	return server.RenderDeleted(o.Factory, t.FullName())
}
