package ippool_test

import (
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/ippool"
)

func TestIPPoolCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		got := run(t, e, ippool.NewCmd, []step{
			{args: []string{"ip-pool", "add", "main", "--default"}, json: true},
			{args: []string{"ip-pool", "add", "bulk"}, out: "Added IP pool bulk."},
			{args: []string{"ip-pool", "add", "main"}, code: 1, errText: "IP pool main already exists"},
			{args: []string{"ip-pool", "add", "two words"}, code: 2, errText: "without spaces"},
			{args: []string{"ip-pool", "ls"}, json: true},
			{args: []string{"ip-pool", "rm", "bulk"}, json: true},
			{args: []string{"ip-pool", "rm", "bulk"}, code: 1, errText: "IP pool bulk not found; list pools with `postalctl ip-pool ls`"},
		})
		golden(t, "ippool", got)
	})
}
