package ipaddress_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/ipaddress"
)

func TestIPAddressCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		for _, p := range []string{"main", "bulk"} {
			if _, err := e.Store.CreateIPPool(context.Background(), p, false); err != nil {
				t.Fatal(err)
			}
		}
		got := e.Steps(t, ipaddress.NewCmd, []clitest.Step{
			{Args: []string{"ip-address", "add", "main", "192.0.2.10", "--hostname", "o1.example.com", "--ipv6", "2001:db8::10"}, JSON: true},
			{Args: []string{"ip-address", "add", "bulk", "192.0.2.20", "--hostname", "o2.example.com", "--priority", "50"}, Out: "Added 192.0.2.20 (o2.example.com) to pool bulk."},
			{Args: []string{"ip-address", "add", "bulk", "192.0.2.10", "--hostname", "o3.example.com"}, Code: 1, ErrText: "IP address 192.0.2.10 is already in a pool"},
			{Args: []string{"ip-address", "add", "nope", "192.0.2.30", "--hostname", "o3.example.com"}, Code: 1, ErrText: "IP pool nope not found"},
			{Args: []string{"ip-address", "add", "main", "300.0.2.1", "--hostname", "o3.example.com"}, Code: 2, ErrText: `"300.0.2.1" is not an IPv4 address`},
			{Args: []string{"ip-address", "add", "main", "192.0.2.31", "--hostname", "o3.example.com", "--ipv6", "192.0.2.1"}, Code: 2, ErrText: "is not an IPv6 address"},
			{Args: []string{"ip-address", "add", "main", "192.0.2.31", "--hostname", "not a host"}, Code: 2, ErrText: "is not a fully qualified host name"},
			{Args: []string{"ip-address", "add", "main", "192.0.2.31", "--hostname", "o3.example.com", "--priority", "0"}, Code: 2, ErrText: "--priority 0"},
			{Args: []string{"ip-address", "ls"}, JSON: true},
			{Args: []string{"ip-address", "ls", "bulk"}, JSON: true},
			{Args: []string{"ip-address", "rm", "192.0.2.20"}, JSON: true},
			{Args: []string{"ip-address", "rm", "192.0.2.20"}, Code: 1, ErrText: "IP address 192.0.2.20 not found"},
		})
		clitest.Golden(t, "ipaddress", got)
	})
}
