package org

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// RemoveOptions are the parsed arguments of `org rm`.
type RemoveOptions struct {
	Factory   *cli.Factory
	Permalink string
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:     "rm ORG",
		Aliases: []string{"remove"},
		Short:   "Remove an organisation with all its servers and their mail",
		Args:    cli.ExactArgs(1, "ORG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Permalink = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRemove(cmd.Context(), o)
		},
	}
}

func runRemove(ctx context.Context, o *RemoveOptions) error {
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	err = st.DeleteOrganization(ctx, o.Permalink)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("organization %s not found; list organizations with `postalctl org ls`", o.Permalink)
	}
	if err != nil {
		return err
	}
	return server.RenderDeleted(o.Factory, o.Permalink)
}
