package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// ListOptions are the parsed arguments of `server ls`.
type ListOptions struct {
	Factory *cli.Factory
	// Org limits the list to one organisation ("" for all).
	Org string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	cmd := &cobra.Command{
		Use:     "ls [ORG]",
		Aliases: []string{"list"},
		Short:   "List mail servers",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Org = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
	return cmd
}

func runList(ctx context.Context, o *ListOptions) error {
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	if o.Org != "" {
		if _, err := st.Organization(ctx, o.Org); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("organization %s not found; list organizations with `postalctl org ls`", o.Org)
		} else if err != nil {
			return err
		}
	}
	list, err := st.Servers(ctx, o.Org)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*store.Server{}
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "SERVER\tNAME\tMODE\tSEND LIMIT\tSUSPENDED")
		for _, s := range list {
			limit := "-"
			if s.SendLimit != nil {
				limit = fmt.Sprint(*s.SendLimit)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Path(), s.Name, s.Mode, limit, yesNo(s.Suspended()))
		}
	})
}
