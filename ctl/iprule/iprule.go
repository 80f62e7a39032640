// Package iprule is `postalctl ip-rule`: add, list and remove IP pool
// rules, which send mail of an organisation or a server whose sender or
// recipient matches through a chosen pool.
package iprule

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the ip-rule command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "ip-rule", Short: "Manage IP pool rules of organisations and servers"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil))
	return cmd
}

// owner is the organisation or server a rule belongs to.
type owner struct {
	st       *store.Store
	orgID    int64
	serverID int64
}

// findOwner resolves ORG or ORG/SERVER.
func findOwner(ctx context.Context, f *cli.Factory, ref string) (owner, error) {
	if strings.Contains(ref, "/") {
		st, srv, err := server.Find(ctx, f, ref)
		if err != nil {
			return owner{}, err
		}
		return owner{st: st, orgID: srv.OrganizationID, serverID: srv.ID}, nil
	}
	if !server.ValidPermalink(ref) {
		return owner{}, cli.Usagef("%q is not ORG or ORG/SERVER", ref)
	}
	st, err := f.Store(ctx)
	if err != nil {
		return owner{}, err
	}
	org, err := st.Organization(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return owner{}, fmt.Errorf("organization %s not found; list organizations with `postalctl org ls`", ref)
	}
	if err != nil {
		return owner{}, err
	}
	return owner{st: st, orgID: org.ID}, nil
}

// parseMatches checks that each entry is an e-mail address or a domain.
func parseMatches(flag string, list []string) ([]string, error) {
	v := validator.New()
	var out []string
	for _, e := range list {
		e = strings.ToLower(strings.TrimSpace(e))
		if v.Var(e, "email") != nil && v.Var(e, "fqdn") != nil {
			return nil, cli.Usagef("--%s %q is not an e-mail address or domain", flag, e)
		}
		out = append(out, e)
	}
	return out, nil
}
