package org

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// ListOptions are the parsed arguments of `org ls`.
type ListOptions struct {
	Factory *cli.Factory
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List organisations",
		Args:    cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
}

func runList(ctx context.Context, o *ListOptions) error {
	st, err := o.Factory.Store(ctx)
	if err != nil {
		return err
	}
	list, err := st.Organizations(ctx)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*store.Organization{}
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "ORG\tNAME\tCREATED")
		for _, org := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\n", org.Permalink, org.Name, cli.FormatTime(org.CreatedAt))
		}
	})
}
