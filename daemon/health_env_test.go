package daemon

import (
	"testing"

	"github.com/postalgo/postal/config"
)

// HEALTH_SERVER_PORT/HEALTH_SERVER_BIND_ADDRESS move any process's health
// listener, over the configured one and over PORT/BIND_ADDRESS; bad values
// are refused with the variable's name.
func TestHealthServerEnvironment(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cfg := config.Defaults()
	tests := []struct {
		name  string
		env   map[string]string
		roles []string
		want  string
		err   string
	}{
		{"configured", nil, []string{RoleWorker}, "127.0.0.1:9090", ""},
		{"smtp-server only", nil, []string{RoleSMTPServer}, "127.0.0.1:9091", ""},
		{"port for a worker", map[string]string{"HEALTH_SERVER_PORT": "9123"}, []string{RoleWorker}, "127.0.0.1:9123", ""},
		{"both for all roles", map[string]string{"HEALTH_SERVER_PORT": "9124", "HEALTH_SERVER_BIND_ADDRESS": "::1"},
			[]string{RoleWorker, RoleSMTPServer}, "[::1]:9124", ""},
		{"over PORT", map[string]string{"HEALTH_SERVER_PORT": "9125", "PORT": "7000"}, []string{RoleCron}, "127.0.0.1:9125", ""},
		{"bad port", map[string]string{"HEALTH_SERVER_PORT": "99999"}, nil, "", `HEALTH_SERVER_PORT: "99999" is not a port (1-65535)`},
		{"bad address", map[string]string{"HEALTH_SERVER_BIND_ADDRESS": "localhost"}, nil, "",
			`HEALTH_SERVER_BIND_ADDRESS: "localhost" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bind, port, err := healthOverride(env(tt.env))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := &deps{cfg: cfg, roles: tt.roles, healthBind: bind, healthPort: port}
			if len(tt.roles) == 1 {
				d.listenPort = tt.env["PORT"]
			}
			if got := healthAddr(d); got != tt.want {
				t.Fatalf("health address = %s, want %s", got, tt.want)
			}
		})
	}
}
