// Package configcmd is `postalctl config validate|show`.
package configcmd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
)

// NewCmd returns the `config` noun.
func NewCmd(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check and show the configuration"}
	cmd.AddCommand(newValidateCmd(f, nil), newShowCmd(f, nil))
	return cmd
}

// ValidateOptions are validate's flags.
type ValidateOptions struct{ Factory *cli.Factory }

// ValidateResult is validate's --json output.
type ValidateResult struct {
	Path     string           `json:"path"`
	Valid    bool             `json:"valid"`
	Problems []config.Problem `json:"problems"`
}

func newValidateCmd(f *cli.Factory, runF func(context.Context, *ValidateOptions) error) *cobra.Command {
	o := &ValidateOptions{Factory: f}
	return &cobra.Command{
		Use:   "validate",
		Short: "Check postal.yml and the environment; list every problem",
		Args:  cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runValidate(o)
		},
	}
}

func runValidate(o *ValidateOptions) error {
	f := o.Factory
	path, err := f.ConfigFile()
	if err != nil {
		return err
	}
	res := ValidateResult{Path: path, Valid: true, Problems: []config.Problem{}}
	_, err = config.Load(path, f.Lookup)
	var p *config.Problems
	switch {
	case errors.As(err, &p):
		res.Valid = false
		res.Problems = p.List
	case err != nil:
		return &cli.ConfigError{Err: err}
	}
	if f.JSON {
		if err := cli.WriteJSON(f.IO.Out, res); err != nil {
			return err
		}
		if !res.Valid {
			return &cli.ConfigError{Err: cli.ErrSilent}
		}
		return nil
	}
	if !res.Valid {
		return &cli.ConfigError{Err: err}
	}
	fmt.Fprintf(f.IO.Out, "%s is valid\n", displayPath(path))
	return nil
}

// ShowOptions are show's flags.
type ShowOptions struct{ Factory *cli.Factory }

func newShowCmd(f *cli.Factory, runF func(context.Context, *ShowOptions) error) *cobra.Command {
	o := &ShowOptions{Factory: f}
	return &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (file + environment + defaults), secrets hidden",
		Args:  cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runShow(o)
		},
	}
}

func runShow(o *ShowOptions) error {
	cfg, err := o.Factory.Config()
	if err != nil {
		return err
	}
	red := cfg.Redacted()
	if o.Factory.JSON {
		return cli.WriteJSON(o.Factory.IO.Out, red)
	}
	return writeYAML(o.Factory.IO.Out, red)
}

func writeYAML(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("render yaml: %w", err)
	}
	return enc.Close()
}

func displayPath(p string) string {
	if p == "" {
		return "the default configuration"
	}
	return p
}
