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
		got := run(t, e, iprule.NewCmd, []step{
			{args: []string{"ip-rule", "add", "acme/mail", "bulk", "--to", "Gmail.com,news@yahoo.com"}, json: true},
			{args: []string{"ip-rule", "add", "acme", "bulk", "--from", "marketing@example.com"}, json: true},
			{args: []string{"ip-rule", "add", "acme/mail", "bulk"}, code: 2, errText: "give --from or --to"},
			{args: []string{"ip-rule", "add", "acme/mail", "bulk", "--to", "not valid"}, code: 2, errText: `--to "not valid" is not an e-mail address or domain`},
			{args: []string{"ip-rule", "add", "acme/mail", "nope", "--to", "gmail.com"}, code: 1, errText: "IP pool nope not found"},
			{args: []string{"ip-rule", "add", "zzz", "bulk", "--to", "gmail.com"}, code: 1, errText: "organization zzz not found"},
			{args: []string{"ip-rule", "add", "acme/zzz", "bulk", "--to", "gmail.com"}, code: 1, errText: "server acme/zzz not found"},
			{args: []string{"ip-rule", "ls", "acme/mail"}, json: true},
			{args: []string{"ip-rule", "ls", "acme"}, out: "acme   bulk  marketing@example.com  -"},
			{args: []string{"ip-rule", "rm", "00000000-0000-4000-a000-000000000000"}, code: 1, errText: "not found"},
		})
		golden(t, "iprule", got)
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
