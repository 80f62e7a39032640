// Package org is `postalctl org`: create, list and remove organisations,
// the owners of mail servers.
package org

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the org command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Manage organisations"}
	cmd.AddCommand(newCreateCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// CreateOptions are the parsed arguments of `org create`.
type CreateOptions struct {
	Factory   *cli.Factory
	Permalink string
	Name      string
}

func newCreateCmd(f *cli.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	o := &CreateOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "create ORG",
		Short: "Create an organisation (ORG is its permalink)",
		Args:  cli.ExactArgs(1, "ORG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Permalink = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runCreate(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "display name (default: the permalink)")
	return cmd
}

func runCreate(ctx context.Context, o *CreateOptions) error {
	if !server.ValidPermalink(o.Permalink) {
		return cli.Usagef("%q is not a permalink: use lower-case letters, digits and hyphens", o.Permalink)
	}
	name := o.Name
	if name == "" {
		name = o.Permalink
	}
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	org, err := st.CreateOrganization(ctx, name, o.Permalink)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("organization %s already exists; list organizations with `postalctl org ls`", o.Permalink)
	}
	if err != nil {
		return err
	}
	return o.Factory.Render(org, func(w io.Writer) {
		fmt.Fprintf(w, "Created organization %s (%s).\n", org.Permalink, org.Name)
	})
}
