package ctl

import (
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
)

// commands lists the top-level commands, one constructor per noun package.
func commands(f *cli.Factory) []*cobra.Command {
	return []*cobra.Command{
		newVersionCmd(),
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cli.ExactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write([]byte(Version + "\n"))
			return err
		},
	}
}
