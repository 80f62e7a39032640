package org_test

import (
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/org"
)

func TestOrgCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		got := run(t, e, org.NewCmd, []step{
			{args: []string{"org", "ls"}, json: true},
			{args: []string{"org", "create", "acme", "--name", "Acme Inc"}, json: true},
			{args: []string{"org", "create", "beta"}, out: "Created organization beta (beta)."},
			{args: []string{"org", "create", "acme"}, code: 1, errText: "organization acme already exists; list organizations with `postalctl org ls`"},
			{args: []string{"org", "create", "Not Valid"}, code: 2, errText: `"Not Valid" is not a permalink`},
			{args: []string{"org", "create"}, code: 2, errText: "takes ORG"},
			{args: []string{"org", "ls"}, json: true},
			{args: []string{"org", "ls"}, out: "acme  Acme Inc"},
			{args: []string{"org", "rm", "beta"}, json: true},
			{args: []string{"org", "rm", "beta"}, code: 1, errText: "organization beta not found"},
		})
		golden(t, "org", got)
	})
}
