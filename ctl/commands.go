package ctl

import (
	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/configcmd"
	"github.com/postalgo/postal/ctl/credential"
	"github.com/postalgo/postal/ctl/domain"
	"github.com/postalgo/postal/ctl/endpoint"
	"github.com/postalgo/postal/ctl/importpostal"
	"github.com/postalgo/postal/ctl/ipaddress"
	"github.com/postalgo/postal/ctl/ippool"
	"github.com/postalgo/postal/ctl/iprule"
	"github.com/postalgo/postal/ctl/message"
	"github.com/postalgo/postal/ctl/org"
	"github.com/postalgo/postal/ctl/queuecmd"
	"github.com/postalgo/postal/ctl/route"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/ctl/setup"
	"github.com/postalgo/postal/ctl/signingkey"
	"github.com/postalgo/postal/ctl/stats"
	"github.com/postalgo/postal/ctl/status"
	"github.com/postalgo/postal/ctl/suppression"
	"github.com/postalgo/postal/ctl/trackdomain"
	"github.com/postalgo/postal/ctl/tuicmd"
	"github.com/postalgo/postal/ctl/upgrade"
	"github.com/postalgo/postal/ctl/webhook"
)

// commands lists the top-level commands, one constructor per noun package.
func commands(f *cli.Factory) []*cobra.Command {
	return []*cobra.Command{
		newVersionCmd(),
		setup.NewCmd(f, nil),
		configcmd.NewCmd(f),
		signingkey.NewCmd(f),
		upgrade.NewCmd(f, nil),
		// The mail model (issue 4).
		org.NewCmd(f),
		server.NewCmd(f),
		domain.NewCmd(f),
		credential.NewCmd(f),
		route.NewCmd(f),
		endpoint.NewCmd(f),
		webhook.NewCmd(f),
		ippool.NewCmd(f),
		ipaddress.NewCmd(f),
		iprule.NewCmd(f),
		trackdomain.NewCmd(f),
		suppression.NewCmd(f),
		// Moving from Postal.
		importpostal.NewCmd(f, nil),
		// Operations: health, queue, messages, the live console.
		status.NewCmd(f, nil),
		queuecmd.NewCmd(f),
		message.NewCmd(f),
		stats.NewCmd(f, nil),
		tuicmd.NewCmd(f, nil),
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
