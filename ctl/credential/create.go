package credential

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

// CreateOptions are the parsed arguments of `credential create`.
type CreateOptions struct {
	Factory *cli.Factory
	Path    string
	Type    string
	Name    string
	// Key is the SMTP/API key to use instead of a generated one, or the
	// SMTP-IP source address range (required for smtp-ip).
	Key  string
	Hold bool
}

// Created is the --json output of `credential create`: the key appears
// here and nowhere else, ever.
type Created struct {
	Key        string            `json:"key"`
	Credential *store.Credential `json:"credential"`
}

func newCreateCmd(f *cli.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	o := &CreateOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "create ORG/SERVER --type smtp|api|smtp-ip NAME",
		Short: "Create a credential and print its key (shown only this once)",
		Example: "  postalctl credential create acme/mail --type smtp app\n" +
			"  postalctl credential create acme/mail --type smtp-ip office --key 192.0.2.0/24",
		Args:              cli.ExactArgs(2, "ORG/SERVER NAME"),
		ValidArgsFunction: server.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path, o.Name = args[0], args[1]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runCreate(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Type, "type", "", "smtp, api or smtp-ip (required)")
	cmd.Flags().StringVar(&o.Key, "key", "", "smtp/api: the key to use (16+ characters; default: a random one); smtp-ip: the source CIDR")
	cmd.Flags().BoolVar(&o.Hold, "hold", false, "hold mail sent with this credential instead of delivering it")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

// parseCIDR accepts a CIDR or a single address (as /32 or /128) and returns
// the canonical prefix.
func parseCIDR(s string) (string, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	}
	return "", cli.Usagef("--key %q is not an IP address or CIDR range (like 192.0.2.0/24)", s)
}

func validKey(k string) bool {
	if len(k) < 16 || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func runCreate(ctx context.Context, o *CreateOptions) error {
	typ, err := ParseType(o.Type)
	if err != nil {
		return err
	}
	if strings.TrimSpace(o.Name) == "" {
		return cli.Usagef("credential name is empty")
	}
	key := o.Key
	switch {
	case typ == store.CredentialSMTPIP && key == "":
		return cli.Usagef("--type smtp-ip needs --key CIDR (the addresses allowed to send)")
	case typ == store.CredentialSMTPIP:
		if key, err = parseCIDR(key); err != nil {
			return err
		}
	case key == "":
		key = NewKey()
	case !validKey(key):
		return cli.Usagef("--key must be 16 to 128 printable characters without spaces")
	}
	st, srv, err := server.Find(ctx, o.Factory, o.Path)
	if err != nil {
		return err
	}
	c, err := st.CreateCredential(ctx, srv.ID, store.NewCredential{Type: typ, Name: o.Name, Key: key, Hold: o.Hold})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("that key is already in use; choose another or let postalctl generate one")
	}
	if err != nil {
		return err
	}
	if typ != store.CredentialSMTPIP {
		// Read the credential back by its key: the stored hash must answer
		// for this key and no other before we hand the key out.
		back, err := st.CredentialByKey(ctx, typ, key)
		if err != nil || subtle.ConstantTimeCompare([]byte(back.UUID), []byte(c.UUID)) != 1 {
			return fmt.Errorf("credential %s was stored but its key does not look it up (%v); remove it with `postalctl credential rm %s %s`",
				c.UUID, err, o.Path, c.UUID)
		}
	}
	return o.Factory.Render(Created{Key: key, Credential: c}, func(w io.Writer) {
		fmt.Fprintf(w, "Created %s credential %q (%s) on %s.\n", c.Type, c.Name, c.UUID, o.Path)
		if typ == store.CredentialSMTPIP {
			fmt.Fprintf(w, "Mail from %s may now be relayed without authentication.\n", key)
			return
		}
		fmt.Fprintf(w, "Key: %s\nThis key is shown only now; store it safely.\n", key)
	})
}
