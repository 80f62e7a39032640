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
		got := e.Steps(t, server.NewCmd, []clitest.Step{
			{Args: []string{"server", "create", "acme/mail", "--name", "Mail"}, JSON: true},
			{Args: []string{"server", "create", "acme/dev", "--mode", "development"}, Out: "Mode:                   Development"},
			{Args: []string{"server", "create", "acme/mail"}, Code: 1, ErrText: "server acme/mail already exists"},
			{Args: []string{"server", "create", "nope/mail"}, Code: 1, ErrText: "organization nope not found; create it with `postalctl org create nope`"},
			{Args: []string{"server", "create", "acme/x", "--mode", "turbo"}, Code: 2, ErrText: `--mode "turbo": want live or development`},
			{Args: []string{"server", "create", "acme"}, Code: 2, ErrText: `"acme" is not ORG/SERVER`},
			{Args: []string{"server", "ls"}, JSON: true},
			{Args: []string{"server", "ls", "acme"}, Out: "acme/dev   dev   Development  -           no"},
			{Args: []string{"server", "ls", "nope"}, Code: 1, ErrText: "organization nope not found"},
			{Args: []string{"server", "set", "acme/mail", "--mode", "development", "--send-limit", "100", "--privacy-mode",
				"--spam-threshold", "6.5", "--message-retention-days", "7"}, JSON: true},
			{Args: []string{"server", "set", "acme/mail"}, Code: 2, ErrText: "nothing to change"},
			{Args: []string{"server", "set", "acme/mail", "--send-limit", "-1"}, Code: 2, ErrText: "--send-limit -1"},
			{Args: []string{"server", "suspend", "acme/mail", "--reason", "abuse report"}, JSON: true},
			{Args: []string{"server", "show", "acme/mail"}, Out: "(abuse report)"},
			{Args: []string{"server", "unsuspend", "acme/mail"}, JSON: true},
			{Args: []string{"server", "show", "acme/nope"}, Code: 1, ErrText: "server acme/nope not found; list servers with `postalctl server ls`"},
			{Args: []string{"server", "rm", "acme/dev"}, JSON: true},
			{Args: []string{"server", "rm", "acme/dev"}, Code: 1, ErrText: "server acme/dev not found"},
		})
		clitest.Golden(t, "server", got)
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

// New servers take postal.default_spam_threshold and
// default_spam_failure_threshold, as Postal copies them.
func TestCreateUsesDefaultSpamThresholds(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	ctx := context.Background()
	if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
	e.Env["POSTAL_DEFAULT_SPAM_THRESHOLD"] = "7"
	e.Env["POSTAL_DEFAULT_SPAM_FAILURE_THRESHOLD"] = "30"
	if r := e.Run(t, server.NewCmd, "server", "create", "acme/mail"); r.Code != 0 {
		t.Fatalf("create: %+v", r)
	}
	srv, err := e.Store.Server(ctx, "acme/mail")
	if err != nil {
		t.Fatal(err)
	}
	if srv.SpamThreshold != 7 || srv.SpamFailureThreshold != 30 {
		t.Fatalf("thresholds = %v/%v, want 7/30", srv.SpamThreshold, srv.SpamFailureThreshold)
	}
}
