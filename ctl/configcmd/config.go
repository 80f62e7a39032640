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
type ValidateOptions struct {
	Factory *cli.Factory
	// Strict makes warnings (keys Postal ignores, the legacy layout) errors.
	Strict bool
}

// ValidateResult is validate's --json output. Warnings are what loads but
// deserves attention; with --strict they are also in Problems. Notes are
// facts worth knowing (where Postal's MariaDB and postald's own data live).
type ValidateResult struct {
	Path     string           `json:"path"`
	Valid    bool             `json:"valid"`
	Problems []config.Problem `json:"problems"`
	Warnings []config.Problem `json:"warnings"`
	Notes    []string         `json:"notes"`
}

func newValidateCmd(f *cli.Factory, runF func(context.Context, *ValidateOptions) error) *cobra.Command {
	o := &ValidateOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check postal.yml and the environment; list every problem (and every warning)",
		Args:  cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runValidate(o)
		},
	}
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "treat warnings (keys Postal ignores, the legacy layout) as errors")
	return cmd
}

func runValidate(o *ValidateOptions) error {
	f := o.Factory
	path, err := f.ConfigFile()
	if err != nil {
		return err
	}
	res := ValidateResult{Path: path, Valid: true, Problems: []config.Problem{}, Warnings: []config.Problem{}, Notes: []string{}}
	cfg, err := config.Load(path, f.Lookup)
	var p *config.Problems
	switch {
	case errors.As(err, &p):
		res.Valid = false
		res.Problems = p.List
	case err != nil:
		return &cli.ConfigError{Err: err}
	default:
		res.Warnings = append(res.Warnings, cfg.Warnings...)
		if note := cfg.PostalDatabaseNote(); note != "" {
			res.Notes = append(res.Notes, note)
		}
		if o.Strict {
			if serr := cfg.Strict(); serr != nil {
				res.Valid = false
				res.Problems = append(res.Problems, cfg.Warnings...)
				err = serr
			}
		}
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
	for _, w := range res.Warnings {
		fmt.Fprintf(f.IO.ErrOut, "warning: %s: %s\n", w.Path, w.Message)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(f.IO.Out, "note: %s\n", n)
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
		byKey, err := keyedByYAMLNames(red)
		if err != nil {
			return err
		}
		return cli.WriteJSON(o.Factory.IO.Out, byKey)
	}
	return writeYAML(o.Factory.IO.Out, red)
}

// keyedByYAMLNames turns the configuration into nested maps keyed by the
// names postal.yml uses (web_server.default_port, not WebServer.DefaultPort),
// so --json output and the file speak the same language.
func keyedByYAMLNames(c *config.Config) (map[string]any, error) {
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	return out, nil
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
