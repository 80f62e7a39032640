package server_test

import (
	"context"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/server"
	"github.com/postalgo/postal/daemon/store"
)

func TestServerCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		if _, err := e.Store.CreateOrganization(context.Background(), "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		got := run(t, e, server.NewCmd, []step{
			{args: []string{"server", "create", "acme/mail", "--name", "Mail"}, json: true},
			{args: []string{"server", "create", "acme/dev", "--mode", "development"}, out: "Mode:                   Development"},
			{args: []string{"server", "create", "acme/mail"}, code: 1, errText: "server acme/mail already exists"},
			{args: []string{"server", "create", "nope/mail"}, code: 1, errText: "organization nope not found; create it with `postalctl org create nope`"},
			{args: []string{"server", "create", "acme/x", "--mode", "turbo"}, code: 2, errText: `--mode "turbo": want live or development`},
			{args: []string{"server", "create", "acme"}, code: 2, errText: `"acme" is not ORG/SERVER`},
			{args: []string{"server", "ls"}, json: true},
			{args: []string{"server", "ls", "acme"}, out: "acme/dev   dev   Development  -           no"},
			{args: []string{"server", "ls", "nope"}, code: 1, errText: "organization nope not found"},
			{args: []string{"server", "set", "acme/mail", "--mode", "development", "--send-limit", "100", "--privacy-mode",
				"--spam-threshold", "6.5", "--message-retention-days", "7"}, json: true},
			{args: []string{"server", "set", "acme/mail"}, code: 2, errText: "nothing to change"},
			{args: []string{"server", "set", "acme/mail", "--send-limit", "-1"}, code: 2, errText: "--send-limit -1"},
			{args: []string{"server", "suspend", "acme/mail", "--reason", "abuse report"}, json: true},
			{args: []string{"server", "show", "acme/mail"}, out: "(abuse report)"},
			{args: []string{"server", "unsuspend", "acme/mail"}, json: true},
			{args: []string{"server", "show", "acme/nope"}, code: 1, errText: "server acme/nope not found; list servers with `postalctl server ls`"},
			{args: []string{"server", "rm", "acme/dev"}, json: true},
			{args: []string{"server", "rm", "acme/dev"}, code: 1, errText: "server acme/dev not found"},
		})
		golden(t, "server", got)
	})
}

// The ORG/SERVER argument completes from the database, and only the first
// argument completes.
func TestCompleteServers(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	ctx := context.Background()
	if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"mail", "bulk"} {
		if _, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: p, Permalink: p}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Store.CreateOrganization(ctx, "Beta", "beta"); err != nil {
		t.Fatal(err)
	}
	f := cli.NewFactory(cli.NewTestIO("", false).IOStreams, func(string) (string, bool) { return "", false })
	f.ConfigPath = e.ConfigPath
	t.Cleanup(f.Close)
	cmd := &cobra.Command{}
	tests := []struct {
		name       string
		complete   cobra.CompletionFunc
		args       []string
		toComplete string
		want       []string
	}{
		{"all servers", server.Complete(f), nil, "", []string{"acme/bulk\tbulk", "acme/mail\tmail"}},
		{"by prefix", server.Complete(f), nil, "acme/m", []string{"acme/mail\tmail"}},
		{"no match", server.Complete(f), nil, "zz", nil},
		{"second argument", server.Complete(f), []string{"acme/mail"}, "", nil},
		{"organisations", server.CompleteOrg(f), nil, "b", []string{"beta/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dir := tt.complete(cmd, tt.args, tt.toComplete)
			if dir&cobra.ShellCompDirectiveNoFileComp == 0 || dir&cobra.ShellCompDirectiveError != 0 {
				t.Fatalf("directive %d", dir)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("completions %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("completions %q, want %q", got, tt.want)
				}
			}
		})
	}
}
