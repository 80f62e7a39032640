// Package signingkey is `postalctl signing-key generate|public`: the RSA key
// postal signs webhooks with, in Postal's signing.key format.
package signingkey

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/daemon/signing"
)

// NewCmd returns the `signing-key` noun.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "signing-key", Short: "Generate or show the webhook signing key"}
	cmd.AddCommand(newGenerateCmd(f, nil), newPublicCmd(f, nil))
	return cmd
}

// GenerateOptions are generate's flags.
type GenerateOptions struct {
	Factory *cli.Factory
	Out     string
	Bits    int
	Force   bool
}

func newGenerateCmd(f *cli.Factory, runF func(context.Context, *GenerateOptions) error) *cobra.Command {
	o := &GenerateOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write a new RSA signing key (PEM, mode 0600)",
		Args:  cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runGenerate(o)
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "", "where to write the key (default: postal.signing_key_path)")
	cmd.Flags().IntVar(&o.Bits, "bits", 2048, "RSA key size (at least 2048)")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace an existing key")
	return cmd
}

func runGenerate(o *GenerateOptions) error {
	if o.Bits < signing.MinBits || o.Bits > 8192 {
		return cli.Usagef("--bits must be between %d and 8192", signing.MinBits)
	}
	out := o.Out
	if out == "" {
		cfg, err := o.Factory.Config()
		if err != nil {
			return err
		}
		out = cfg.Postal.SigningKeyPath
	}
	key, err := signing.Generate(o.Bits)
	if err != nil {
		return err
	}
	if err := signing.WriteFile(out, key, o.Force); err != nil {
		return err
	}
	k, err := signing.NewKey(key)
	if err != nil {
		return err
	}
	return o.Factory.Render(map[string]any{"path": out, "bits": o.Bits, "kid": k.KID()}, func(w io.Writer) {
		fmt.Fprintf(w, "Wrote %s (RSA %d, mode 0600, kid %s)\n", out, o.Bits, k.KID())
	})
}

// PublicOptions are public's flags.
type PublicOptions struct {
	Factory *cli.Factory
	Format  string
}

func newPublicCmd(f *cli.Factory, runF func(context.Context, *PublicOptions) error) *cobra.Command {
	o := &PublicOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "public",
		Short: "Print the signing key's public half (PEM or JWK)",
		Args:  cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runPublic(o)
		},
	}
	cmd.Flags().StringVar(&o.Format, "format", "pem", "pem or jwk")
	return cmd
}

func runPublic(o *PublicOptions) error {
	if o.Format != "pem" && o.Format != "jwk" {
		return cli.Usagef("--format must be pem or jwk, not %q", o.Format)
	}
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	k, err := signing.Load(cfg.Postal.SigningKeyPath)
	if err != nil {
		return err
	}
	if o.Format == "jwk" || o.Factory.JSON {
		return cli.WriteJSON(o.Factory.IO.Out, k.JWK())
	}
	_, err = o.Factory.IO.Out.Write(k.PublicPEM())
	return err
}
