// Package route is `postalctl route`: add, list and remove a server's
// routes, which decide what happens to mail arriving for name@domain
// (deliver to an HTTP, SMTP or address endpoint, accept, hold, bounce or
// reject). An endpoint given with --endpoint is created with its route in
// one transaction. `route endpoint add|ls|rm` manage a route's additional
// endpoints (one more message per endpoint, as in Postal).
package route

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/store"
)

// NewCmd returns the route command with its verbs.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "route", Short: "Manage a server's routes for incoming mail"}
	cmd.AddCommand(newAddCmd(f, nil), newListCmd(f, nil), newRemoveCmd(f, nil), newEndpointCmd(f))
	return cmd
}

// ParseMode maps endpoint, accept, hold, bounce and reject (any case) to
// the store's names.
func ParseMode(m string) (string, error) {
	for _, v := range []string{store.RouteModeEndpoint, store.RouteModeAccept, store.RouteModeHold, store.RouteModeBounce, store.RouteModeReject} {
		if strings.EqualFold(m, v) {
			return v, nil
		}
	}
	return "", cli.Usagef("--mode %q: want endpoint, accept, hold, bounce or reject", m)
}

// ParseSpamMode maps mark, quarantine and fail (any case) to the store's names.
func ParseSpamMode(m string) (string, error) {
	for _, v := range []string{store.SpamModeMark, store.SpamModeQuarantine, store.SpamModeFail} {
		if strings.EqualFold(m, v) {
			return v, nil
		}
	}
	return "", cli.Usagef("--spam-mode %q: want mark, quarantine or fail", m)
}

// parseAddress splits NAME@DOMAIN; NAME may be "*" for any local part.
func parseAddress(s string) (name, domain string, err error) {
	at := strings.LastIndex(s, "@")
	if at <= 0 || at == len(s)-1 {
		return "", "", cli.Usagef("%q is not NAME@DOMAIN (NAME may be * for any address)", s)
	}
	name, domain = strings.ToLower(s[:at]), strings.ToLower(s[at+1:])
	if name != "*" && validator.New().Var(name+"@example.com", "email") != nil {
		return "", "", cli.Usagef("%q: %q is not a valid local part", s, name)
	}
	return name, domain, nil
}

func describe(r *store.Route) string {
	if r.Endpoint == "" {
		return "-"
	}
	return fmt.Sprintf("%s %s", strings.TrimSuffix(r.EndpointType, "Endpoint"), r.Endpoint)
}

// find returns the route named by ref (its UUID or NAME@DOMAIN) on serverID.
func find(ctx context.Context, st *store.Store, serverID int64, ref string) (*store.Route, error) {
	list, err := st.Routes(ctx, serverID)
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		if r.UUID == ref || strings.EqualFold(r.Address(), ref) {
			return r, nil
		}
	}
	return nil, store.ErrNotFound
}
