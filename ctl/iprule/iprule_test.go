package iprule_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/iprule"
	"github.com/postalgo/postal/daemon/store"
)

func TestIPRuleCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.CreateIPPool(ctx, "bulk", false); err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, iprule.NewCmd, []clitest.Step{
			{Args: []string{"ip-rule", "add", "acme/mail", "bulk", "--to", "Gmail.com,news@yahoo.com"}, JSON: true},
			{Args: []string{"ip-rule", "add", "acme", "bulk", "--from", "marketing@example.com"}, JSON: true},
			{Args: []string{"ip-rule", "add", "acme/mail", "bulk"}, Code: 2, ErrText: "give --from or --to"},
			{Args: []string{"ip-rule", "add", "acme/mail", "bulk", "--to", "not valid"}, Code: 2, ErrText: `--to "not valid" is not an e-mail address or domain`},
			{Args: []string{"ip-rule", "add", "acme/mail", "nope", "--to", "gmail.com"}, Code: 1, ErrText: "IP pool nope not found"},
			{Args: []string{"ip-rule", "add", "zzz", "bulk", "--to", "gmail.com"}, Code: 1, ErrText: "organization zzz not found"},
			{Args: []string{"ip-rule", "add", "acme/zzz", "bulk", "--to", "gmail.com"}, Code: 1, ErrText: "server acme/zzz not found"},
			{Args: []string{"ip-rule", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"ip-rule", "ls", "acme"}, Out: "acme   bulk  marketing@example.com  -"},
			{Args: []string{"ip-rule", "rm", "00000000-0000-4000-a000-000000000000"}, Code: 1, ErrText: "not found"},
		})
		clitest.Golden(t, "iprule", got)
		rules, err := e.Store.IPPoolRules(ctx, 0, srv.ID)
		if err != nil || len(rules) != 1 {
			t.Fatalf("server rules = %v, %v", rules, err)
		}
		if res := e.Run(t, iprule.NewCmd, "ip-rule", "rm", rules[0].UUID, "--json"); res.Code != 0 {
			t.Fatal(res.RunErr)
		}
		if rules, _ := e.Store.IPPoolRules(ctx, 0, srv.ID); len(rules) != 0 {
			t.Fatalf("rules after rm = %d", len(rules))
		}
	})
}
