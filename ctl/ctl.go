// Package ctl is postalctl: the root command, its global flags (--config,
// --json), the list of noun commands, and Main, which runs a command line
// and turns its error into one line on stderr and an exit code (0 ok,
// 1 failure, 2 usage or configuration error).
package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/ctl/cli"
)

// Version is the postalctl/postald version, set at build time with
// -ldflags "-X github.com/postalgo/postal/ctl.Version=...".
var Version = "dev"

// NewRootCmd builds the command tree over f.
func NewRootCmd(f *cli.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "postalctl",
		Short:         "Administer a postal installation",
		Long:          "postalctl administers postal: configuration, keys, schema upgrades, queues and the mail model.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&f.ConfigPath, "config", "", "path to postal.yml (default: $POSTAL_CONFIG_FILE_PATH, /config/postal.yml, /etc/postal/postal.yml)")
	root.PersistentFlags().BoolVar(&f.JSON, "json", false, "print machine-readable JSON")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cli.UsageError{Err: err} })
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.SetIn(f.IO.In)
	for _, c := range commands(f) {
		root.AddCommand(c)
	}
	return root
}

// Main runs postalctl with args and returns the exit code.
func Main(ctx context.Context, args []string, io *cli.IOStreams, lookup func(string) (string, bool)) int {
	f := cli.NewFactory(io, lookup)
	defer f.Close()
	root := NewRootCmd(f)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cli.ExitOK
	}
	if !errors.Is(err, cli.ErrSilent) {
		fmt.Fprintln(io.ErrOut, "postalctl: "+oneLine(err))
	}
	return cli.ExitCode(err)
}

// oneLine keeps error output to a single line, except for configuration
// problems, which are listed one per line under a heading.
func oneLine(err error) string {
	var p *config.Problems
	if errors.As(err, &p) {
		return fmt.Sprintf("configuration has %d problem(s):\n  %s", len(p.List), strings.ReplaceAll(p.Error(), "\n", "\n  "))
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
