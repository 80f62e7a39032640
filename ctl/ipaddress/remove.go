package ipaddress

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// RemoveOptions are the parsed arguments of `ip-address rm`.
type RemoveOptions struct {
	Factory *cli.Factory
	IPv4    string
}

// Deleted is the --json output of `ip-address rm`.
type Deleted struct {
	Deleted string `json:"deleted"`
}

func newRemoveCmd(f *cli.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	o := &RemoveOptions{Factory: f}
	return &cobra.Command{
		Use:     "rm IPV4",
		Aliases: []string{"remove"},
		Short:   "Remove a sending address from its pool",
		Args:    cli.ExactArgs(1, "IPV4"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.IPv4 = args[0]
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
	err = st.DeleteIPAddress(ctx, o.IPv4)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("IP address %s not found; list addresses with `postalctl ip-address ls`", o.IPv4)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(Deleted{Deleted: o.IPv4}, func(w io.Writer) { fmt.Fprintf(w, "Removed %s.\n", o.IPv4) })
}
