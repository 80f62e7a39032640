package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/store"
)

// AddOptions are the parsed arguments of `domain add`.
type AddOptions struct {
	Factory *cli.Factory
	Path    string
	Name    string
	// Verified skips DNS verification (the administrator vouches for the domain).
	Verified bool
	// DKIMBits is the DKIM RSA key size (1024, 2048 or 4096).
	DKIMBits int
}

func newAddCmd(f *cli.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	o := &AddOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "add ORG/SERVER DOMAIN",
		Short: "Add a domain to a server and print the DNS records to publish",
		Long: "Add a domain to a server. A DKIM key and a verification token are generated, and the\n" +
			"DNS records to publish are printed: verification TXT, SPF, DKIM, return-path CNAME and MX.\n" +
			"--verified marks the domain verified without looking for the verification record.",
		Args:              cli.ExactArgs(2, "ORG/SERVER DOMAIN"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runAdd(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Verified, "verified", false, "mark the domain verified now (administrator override)")
	cmd.Flags().IntVar(&o.DKIMBits, "dkim-bits", dkim.DefaultKeyBits,
		"DKIM RSA key size: 2048 (default), 4096, or 1024 (Postal's size: 4x cheaper to sign, weaker)")
	return cmd
}

func runAdd(ctx context.Context, o *AddOptions) error {
	switch o.DKIMBits {
	case 0:
		o.DKIMBits = dkim.DefaultKeyBits
	case 1024, 2048, 4096:
	default:
		return cli.Usagef("--dkim-bits must be 1024, 2048 or 4096, not %d", o.DKIMBits)
	}
	name, err := normalize(o.Name)
	if err != nil {
		return err
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	if _, err := st.ServerDomain(ctx, srv.ID, name); err == nil {
		return fmt.Errorf("domain %s is already on %s; see its records with `postalctl domain show %s %s`", name, o.Path, o.Path, name)
	}
	key, err := dkim.GenerateKey(o.DKIMBits)
	if err != nil {
		return fmt.Errorf("generate DKIM key: %w", err)
	}
	selector := dkim.NewSelector(cfg.DNS.DKIMIdentifier, nil)
	d, err := st.CreateDomain(ctx, srv.ID, store.NewDomain{
		Name:                 name,
		VerificationToken:    store.RandomToken(16),
		DKIMPrivateKey:       string(dkim.EncodePrivateKey(key)),
		DKIMIdentifierString: strings.TrimPrefix(selector, cfg.DNS.DKIMIdentifier+"-"),
		Verified:             o.Verified,
	})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("domain %s is already on %s; see its records with `postalctl domain show %s %s`", name, o.Path, o.Path, name)
	}
	if err != nil {
		return err
	}
	recs, err := records(cfg.DNS, d)
	if err != nil {
		return err
	}
	return o.Factory.Render(Details{Domain: d, Records: recs}, func(w io.Writer) {
		state := "It is not verified yet: publish the verification record"
		if d.Verified() {
			state = "It is marked verified"
		}
		fmt.Fprintf(w, "Added %s to %s. %s.\n\nPublish these DNS records:\n", d.Name, o.Path, state)
		printRecords(w, recs)
		fmt.Fprintf(w, "\nThen run `postalctl domain check %s %s`.\n", o.Path, d.Name)
	})
}
