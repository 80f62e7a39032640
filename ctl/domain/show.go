package domain

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// ShowOptions are the parsed arguments of `domain show`.
type ShowOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
}

func newShowCmd(f *cli.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	o := &ShowOptions{Factory: f}
	return &cobra.Command{
		Use:               "show ORG/SERVER DOMAIN",
		Short:             "Show a domain, its DNS records and its last check",
		Args:              cli.ExactArgs(2, "ORG/SERVER DOMAIN"),
		ValidArgsFunction: completeDomain(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runShow(cmd.Context(), o)
		},
	}
}

func runShow(ctx context.Context, o *ShowOptions) error {
	_, _, d, err := find(ctx, o.Factory, o.Path, o.Name)
	if err != nil {
		return err
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	recs, err := records(cfg.DNS, d)
	if err != nil {
		return err
	}
	return o.Factory.Render(Details{Domain: d, Records: recs}, func(w io.Writer) {
		verified := "no"
		if d.Verified() {
			verified = "since " + cli.FormatTime(d.VerifiedAt)
		}
		fmt.Fprintf(w, "Domain:\t%s\nVerified:\t%s\nDNS checked:\t%s\n", d.Name, verified, cli.FormatTime(d.DNSCheckedAt))
		for _, c := range []struct {
			name string
			st   string
			err  string
		}{{"SPF", d.SPF.Status, d.SPF.Error}, {"DKIM", d.DKIM.Status, d.DKIM.Error}, {"MX", d.MX.Status, d.MX.Error},
			{"Return path", d.ReturnPath.Status, d.ReturnPath.Error}} {
			st := c.st
			if st == "" {
				st = "-"
			}
			if c.err != "" {
				st += " (" + c.err + ")"
			}
			fmt.Fprintf(w, "%s:\t%s\n", c.name, st)
		}
		fmt.Fprintln(w)
		printRecords(w, recs)
	})
}
