package org_test

import (
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/org"
)

func TestOrgCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		got := e.Steps(t, org.NewCmd, []clitest.Step{
			{Args: []string{"org", "ls"}, JSON: true},
			{Args: []string{"org", "create", "acme", "--name", "Acme Inc"}, JSON: true},
			{Args: []string{"org", "create", "beta"}, Out: "Created organization beta (beta)."},
			{Args: []string{"org", "create", "acme"}, Code: 1, ErrText: "organization acme already exists; list organizations with `postalctl org ls`"},
			{Args: []string{"org", "create", "Not Valid"}, Code: 2, ErrText: `"Not Valid" is not a permalink`},
			{Args: []string{"org", "create"}, Code: 2, ErrText: "takes ORG"},
			{Args: []string{"org", "ls"}, JSON: true},
			{Args: []string{"org", "ls"}, Out: "acme  Acme Inc"},
			{Args: []string{"org", "rm", "beta"}, JSON: true},
			{Args: []string{"org", "rm", "beta"}, Code: 1, ErrText: "organization beta not found"},
		})
		clitest.Golden(t, "org", got)
	})
}
