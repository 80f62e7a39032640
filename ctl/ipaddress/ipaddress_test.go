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
		got := run(t, e, ipaddress.NewCmd, []step{
			{args: []string{"ip-address", "add", "main", "192.0.2.10", "--hostname", "o1.example.com", "--ipv6", "2001:db8::10"}, json: true},
			{args: []string{"ip-address", "add", "bulk", "192.0.2.20", "--hostname", "o2.example.com", "--priority", "50"}, out: "Added 192.0.2.20 (o2.example.com) to pool bulk."},
			{args: []string{"ip-address", "add", "bulk", "192.0.2.10", "--hostname", "o3.example.com"}, code: 1, errText: "IP address 192.0.2.10 is already in a pool"},
			{args: []string{"ip-address", "add", "nope", "192.0.2.30", "--hostname", "o3.example.com"}, code: 1, errText: "IP pool nope not found"},
			{args: []string{"ip-address", "add", "main", "300.0.2.1", "--hostname", "o3.example.com"}, code: 2, errText: `"300.0.2.1" is not an IPv4 address`},
			{args: []string{"ip-address", "add", "main", "192.0.2.31", "--hostname", "o3.example.com", "--ipv6", "192.0.2.1"}, code: 2, errText: "is not an IPv6 address"},
			{args: []string{"ip-address", "add", "main", "192.0.2.31", "--hostname", "not a host"}, code: 2, errText: "is not a fully qualified host name"},
			{args: []string{"ip-address", "add", "main", "192.0.2.31", "--hostname", "o3.example.com", "--priority", "0"}, code: 2, errText: "--priority 0"},
			{args: []string{"ip-address", "ls"}, json: true},
			{args: []string{"ip-address", "ls", "bulk"}, json: true},
			{args: []string{"ip-address", "rm", "192.0.2.20"}, json: true},
			{args: []string{"ip-address", "rm", "192.0.2.20"}, code: 1, errText: "IP address 192.0.2.20 not found"},
		})
		golden(t, "ipaddress", got)
	})
}
