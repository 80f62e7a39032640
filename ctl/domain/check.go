package domain

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/dnscheck"
	"github.com/postalgo/postal/daemon/store"
)

// CheckOptions are the parsed arguments of `domain check`.
type CheckOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
}

// CheckRow is the status of one record.
type CheckRow struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// CheckResult is the --json output of `domain check`.
type CheckResult struct {
	Domain   string `json:"domain"`
	Verified bool   `json:"verified"`
	// DNSOK is Postal's judgement: SPF and DKIM OK, MX and return path OK or Missing.
	DNSOK  bool       `json:"dns_ok"`
	Checks []CheckRow `json:"checks"`
}

func newCheckCmd(f *cli.Factory, runF func(context.Context, *CheckOptions) error) *cobra.Command {
	o := &CheckOptions{Factory: f}
	return &cobra.Command{
		Use:   "check ORG/SERVER DOMAIN",
		Short: "Check the domain's DNS records now and print each record's status",
		Long: "Look up the domain's verification, SPF, DKIM, MX and return-path records (at the domain's own\n" +
			"nameservers unless postal.use_local_ns_for_domain_verification is set), store the results, and\n" +
			"mark the domain verified when its verification record is found.",
		Args:              cli.ExactArgs(2, "ORG/SERVER DOMAIN"),
		ValidArgsFunction: completeDomain(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runCheck(cmd.Context(), o)
		},
	}
}

func runCheck(ctx context.Context, o *CheckOptions) error {
	st, _, d, err := find(ctx, o.Factory, o.Path, o.Name)
	if err != nil {
		return err
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	rs, err := dnscheck.NewResolvers(dnscheck.Options{DNS: cfg.DNS, UseLocalNS: cfg.Postal.UseLocalNSForDomainVerification})
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	res, saved, err := dnscheck.Save(ctx, st, rs, cfg.DNS, d, o.Factory.Now())
	if err != nil {
		return err
	}
	out := CheckResult{Domain: saved.Name, Verified: saved.Verified(), DNSOK: res.OK(), Checks: []CheckRow{
		row("verification", res.Verification), row("spf", res.SPF), row("dkim", res.DKIM), row("mx", res.MX),
		row("return_path", res.ReturnPath),
	}}
	return o.Factory.Render(out, func(w io.Writer) {
		fmt.Fprintln(w, "CHECK\tSTATUS\tDETAIL")
		for _, c := range out.Checks {
			fmt.Fprintf(w, "%s\t%s\t%s\n", c.Check, c.Status, c.Error)
		}
		if out.Verified {
			fmt.Fprintf(w, "\n%s is verified.\n", out.Domain)
		} else {
			fmt.Fprintf(w, "\n%s is not verified yet; publish its verification record (`postalctl domain show %s %s`).\n",
				out.Domain, o.Path, out.Domain)
		}
	})
}

func row(name string, c store.DNSCheck) CheckRow {
	return CheckRow{Check: name, Status: c.Status, Error: c.Error}
}
