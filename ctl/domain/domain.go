// Package domain is `postalctl domain`: add a domain to a server (printing
// the DNS records to publish), check those records now, list, show and
// remove domains. DKIM private keys are generated here, stored in the
// database and never printed.
package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/dnscheck"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the domain command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "domain", Short: "Manage a server's domains and their DNS records"}
	cmd.AddCommand(newAddCmd(f, nil), newCheckCmd(f, nil), newListCmd(f, nil), newShowCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// Record is one DNS record the domain's owner publishes.
type Record struct {
	// Purpose is verification, spf, dkim, return_path or mx.
	Purpose  string `json:"purpose"`
	Type     string `json:"type"`
	Name     string `json:"name"`
	Value    string `json:"value"`
	Priority int    `json:"priority,omitempty"`
}

// Details is the --json output of `domain add` and `domain show`.
type Details struct {
	Domain  *store.Domain `json:"domain"`
	Records []Record      `json:"records"`
}

// records lists what d must publish, in the order people set them up.
func records(cfg config.DNS, d *store.Domain) ([]Record, error) {
	r, err := dnscheck.RecordsFor(cfg, d)
	if err != nil {
		return nil, err
	}
	out := []Record{
		{Purpose: "verification", Type: "TXT", Name: r.VerificationName, Value: r.VerificationValue},
		{Purpose: "spf", Type: "TXT", Name: r.SPFName, Value: r.SPFValue},
		{Purpose: "dkim", Type: "TXT", Name: r.DKIMName, Value: r.DKIMValue},
		{Purpose: "return_path", Type: "CNAME", Name: r.ReturnPathName, Value: r.ReturnPathTarget},
	}
	for _, mx := range r.MX {
		out = append(out, Record{Purpose: "mx", Type: "MX", Name: d.Name, Value: mx, Priority: 10})
	}
	return out, nil
}

func printRecords(w io.Writer, recs []Record) {
	fmt.Fprintln(w, "PURPOSE\tTYPE\tNAME\tVALUE")
	for _, r := range recs {
		v := r.Value
		if r.Priority != 0 {
			v = fmt.Sprintf("%d %s", r.Priority, v)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Purpose, r.Type, r.Name, v)
	}
}

// normalize lower-cases name, drops a final dot and checks that it is a
// fully qualified domain name.
func normalize(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if err := validator.New().Var(n, "required,fqdn"); err != nil {
		return "", cli.Usagef("%q is not a domain name", name)
	}
	return n, nil
}

// find looks up domain name on the server at path.
func find(ctx context.Context, f *cli.Factory, path, name string) (*store.Store, *store.Server, *store.Domain, error) {
	n, err := normalize(name)
	if err != nil {
		return nil, nil, nil, err
	}
	st, srv, err := server.Find(ctx, f, path)
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := st.ServerDomain(ctx, srv.ID, n)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, fmt.Errorf("domain %s not found on %s; list its domains with `postalctl domain ls %s`", n, path, path)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return st, srv, d, nil
}

// completeDomain completes ORG/SERVER, then the server's domain names.
func completeDomain(f *cli.Factory) cobra.CompletionFunc {
	servers := server.Complete(f)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) != 1 {
			return servers(cmd, args, toComplete)
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		st, srv, err := server.Find(ctx, f, args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		list, err := st.Domains(ctx, srv.ID)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, d := range list {
			if strings.HasPrefix(d.Name, toComplete) {
				out = append(out, d.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func status(c store.DNSCheck) string {
	if c.Status == "" {
		return "-"
	}
	return c.Status
}
