package daemon

import (
	"context"
	"net"
	"strconv"

	"github.com/postalgo/postal/daemon/webserver"
)

// buildRoles constructs the selected roles (binding their listeners, so a
// port conflict fails startup) in start order.
func buildRoles(_ context.Context, d *deps) ([]role, error) {
	var out []role
	for _, name := range d.roles {
		switch name {
		case RoleWebServer:
			ws, err := webserver.New(webserver.Options{
				Addr:   listenAddr(d, d.cfg.WebServer.DefaultBindAddress, d.cfg.WebServer.DefaultPort),
				Health: d.monitor, JWKS: d.signing.JWKS(), Log: d.log.With("role", name), Grace: d.grace,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, role{name, ws.Run})
		}
	}
	return out, nil
}

var _ = net.JoinHostPort
var _ = strconv.Itoa
