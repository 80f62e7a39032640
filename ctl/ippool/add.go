package ippool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `ip-pool add`.
type AddOptions struct {
	Factory *cli.Factory
	Name    string
	Default bool
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add an IP pool",
		Args:  cli.ExactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Default, "default", false, "make this the default pool (replacing the current default)")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	if strings.TrimSpace(o.Name) == "" || strings.ContainsAny(o.Name, " \t\n") {
		return cli.Usagef("pool name %q must be non-empty without spaces", o.Name)
	}
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	p, err := st.CreateIPPool(ctx, o.Name, o.Default)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("IP pool %s already exists; list pools with `postalctl ip-pool ls`", o.Name)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(p, func(w io.Writer) { fmt.Fprintf(w, "Added IP pool %s.\n", p.Name) })
}
