package trackdomain

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/dnscheck"
	"github.com/postalgo/postal/daemon/store"
)

// CheckOptions are the parsed arguments of `track-domain check`.
type CheckOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
}

// Checked is the --json output of `track-domain check`.
type Checked struct {
	TrackDomain string         `json:"track_domain"`
	DNS         store.DNSCheck `json:"dns"`
	Verified    bool           `json:"verified"`
	// Tracking says whether messages are rewritten: DNS OK or verified.
	Tracking bool `json:"tracking"`
}

func newCheckCmd(f *cli.Factory, runF func(context.Context, *CheckOptions) error) *cobra.Command {
	o := &CheckOptions{Factory: f}
	return &cobra.Command{
		Use:               "check ORG/SERVER NAME.DOMAIN",
		Short:             "Check now that the tracking domain is a CNAME to dns.track_domain and store the result",
		Args:              cli.ExactArgs(2, "ORG/SERVER NAME.DOMAIN"),
		ValidArgsFunction: server.Complete(f),
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
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	t, err := find(ctx, st, srv.ID, o.Name)
	if err != nil {
		return notFound(o.Path, o.Name, err)
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	rs, err := dnscheck.NewResolvers(dnscheck.Options{DNS: cfg.DNS, UseLocalNS: cfg.Postal.UseLocalNSForDomainVerification})
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	r, err := rs.For(ctx, t.Domain)
	if err != nil {
		return fmt.Errorf("check %s: %w", t.FullName(), err)
	}
	res := dnscheck.CheckTrackDomain(ctx, r, t.FullName(), cfg.DNS.TrackDomain)
	if err := st.SaveTrackDomainDNSCheck(ctx, t.ID, res, o.Factory.Now()); err != nil {
		return err
	}
	out := Checked{TrackDomain: t.FullName(), DNS: res, Verified: t.Verified, Tracking: res.Status == "OK" || t.Verified}
	return o.Factory.Render(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s: %s %s\n", out.TrackDomain, res.Status, res.Error)
		if out.Tracking {
			fmt.Fprintln(w, "Messages from its domain are tracked.")
		} else {
			fmt.Fprintf(w, "Not tracking: publish %s CNAME %s, or mark it with `postalctl track-domain set %s %s --verified`.\n",
				out.TrackDomain, cfg.DNS.TrackDomain, o.Path, out.TrackDomain)
		}
	})
}
