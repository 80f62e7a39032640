package domain

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
)

// RemoveOptions are the parsed arguments of `domain rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:               "rm ORG/SERVER DOMAIN",
		Aliases:           []string{"remove"},
		Short:             "Remove a domain (and its routes and track domains) from a server",
		Args:              cli.ExactArgs(2, "ORG/SERVER DOMAIN"),
		ValidArgsFunction: completeDomain(f),
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
	st, srv, d, err := find(ctx, o.Factory, o.Path, o.Name)
	if err != nil {
		return err
	}
	if err := st.DeleteDomain(ctx, srv.ID, d.ID); err != nil {
		return err
	}
	return server.RenderDeleted(o.Factory, d.Name)
}
