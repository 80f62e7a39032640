package ippool_test

import (
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/ippool"
)

func TestIPPoolCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		got := e.Steps(t, ippool.NewCmd, []clitest.Step{
			{Args: []string{"ip-pool", "add", "main", "--default"}, JSON: true},
			{Args: []string{"ip-pool", "add", "bulk"}, Out: "Added IP pool bulk."},
			{Args: []string{"ip-pool", "add", "main"}, Code: 1, ErrText: "IP pool main already exists"},
			{Args: []string{"ip-pool", "add", "two words"}, Code: 2, ErrText: "without spaces"},
			{Args: []string{"ip-pool", "ls"}, JSON: true},
			{Args: []string{"ip-pool", "rm", "bulk"}, JSON: true},
			{Args: []string{"ip-pool", "rm", "bulk"}, Code: 1, ErrText: "IP pool bulk not found; list pools with `postalctl ip-pool ls`"},
		})
		clitest.Golden(t, "ippool", got)
	})
}
