package iprule

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// RemoveOptions are the parsed arguments of `ip-rule rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	UUID    string
}

// Deleted is the --json output of `ip-rule rm`.
type Deleted struct {
	Deleted string `json:"deleted"`
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:     "rm UUID",
		Aliases: []string{"remove"},
		Short:   "Remove an IP pool rule",
		Args:    cli.ExactArgs(1, "UUID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.UUID = args[0]
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
	err = st.DeleteIPPoolRule(ctx, o.UUID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("IP pool rule %s not found; list rules with `postalctl ip-rule ls ORG[/SERVER]`", o.UUID)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(Deleted{Deleted: o.UUID}, func(w io.Writer) { fmt.Fprintf(w, "Removed %s.\n", o.UUID) })
}
