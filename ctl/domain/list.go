package domain

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// ListOptions are the parsed arguments of `domain ls`.
type ListOptions struct {
	Factory *cli.Factory
	Path    string
}

func newListCmd(f *cli.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	o := &ListOptions{Factory: f}
	return &cobra.Command{
		Use:               "ls ORG/SERVER",
		Aliases:           []string{"list"},
		Short:             "List a server's domains with their verification and DNS status",
		Args:              cli.ExactArgs(1, "ORG/SERVER"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runList(cmd.Context(), o)
		},
	}
}

func runList(ctx context.Context, o *ListOptions) error {
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	list, err := st.Domains(ctx, srv.ID)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*store.Domain{}
	}
	return o.Factory.Render(list, func(w io.Writer) {
		fmt.Fprintln(w, "DOMAIN\tVERIFIED\tSPF\tDKIM\tMX\tRETURN PATH\tCHECKED")
		for _, d := range list {
			verified := "no"
			if d.Verified() {
				verified = "yes"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, verified, status(d.SPF), status(d.DKIM), status(d.MX),
				status(d.ReturnPath), cli.FormatTime(d.DNSCheckedAt))
		}
	})
}
