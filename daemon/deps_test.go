package daemon_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependencyRules checks the dependency rules of docs/architecture.md
// over the module's import graph (go list), so they cannot drift.
func TestDependencyRules(t *testing.T) {
	const mod = "github.com/postalgo/postal/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{} // package -> direct imports (module packages shortened)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		for _, imp := range f[1:] {
			imports[pkg] = append(imports[pkg], strings.TrimPrefix(imp, mod))
		}
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil
		}
	}
	if len(imports) < 40 {
		t.Fatalf("go list found only %d packages", len(imports))
	}
	var deps func(pkg string, seen map[string]bool)
	deps = func(pkg string, seen map[string]bool) {
		for _, imp := range imports[pkg] {
			if !seen[imp] {
				seen[imp] = true
				deps(imp, seen)
			}
		}
	}
	all := func(pkg string) map[string]bool { m := map[string]bool{}; deps(pkg, m); return m }
	project := func(p string) bool {
		_, ok := imports[p]
		return ok
	}
	roles := []string{"daemon/smtpserver", "daemon/webserver", "daemon/worker", "daemon/requeuer", "daemon/cron"}
	leaves := []string{"daemon/compose", "daemon/dkim", "daemon/dsn", "daemon/endpoint", "daemon/forwarded", "daemon/inspect", "daemon/libcrypto", "daemon/mailheader", "daemon/tracking",
		"daemon/resolver", "daemon/signing", "daemon/smtpclient", "daemon/untrusted", "daemon/webhook"}
	sqlDrivers := []string{"database/sql", "github.com/jackc/pgx/v5/stdlib", "modernc.org/sqlite", "github.com/go-sql-driver/mysql"}
	redisHolders := []string{"daemon/redisconn", "daemon/queue", "daemon/lease", "daemon/status", "daemon/ratelimit",
		// wiring: they hold the client and hand it to the packages above
		"daemon", "ctl/cli", "tui/source"}

	for pkg, direct := range imports {
		test := strings.HasSuffix(pkg, "test") // storetest, redistest, clitest, dnstest, postaltest
		if pkg == "config" {
			for _, imp := range direct {
				if project(imp) {
					t.Errorf("config imports %s: config imports no project package", imp)
				}
			}
		}
		if pkg == "cmd/postald" || pkg == "cmd/postalctl" {
			for _, imp := range direct {
				if project(imp) && imp != "daemon" && !strings.HasPrefix(imp, "ctl") {
					t.Errorf("%s imports %s: cmd/ is glue", pkg, imp)
				}
			}
		}
		if slices.Contains(roles, pkg) {
			for dep := range all(pkg) {
				if slices.Contains(roles, dep) {
					t.Errorf("role %s depends on role %s: roles never import each other", pkg, dep)
				}
			}
		}
		if slices.Contains(leaves, pkg) {
			for _, imp := range direct {
				if project(imp) && !slices.Contains(leaves, imp) && imp != "config" {
					t.Errorf("leaf %s imports %s: concern packages import only other leaves", pkg, imp)
				}
			}
		}
		if strings.HasPrefix(pkg, "ctl") || strings.HasPrefix(pkg, "tui") {
			for dep := range all(pkg) {
				if slices.Contains(roles, dep) || dep == "daemon" {
					t.Errorf("%s depends on %s: ctl and tui never use a role", pkg, dep)
				}
			}
		}
		for _, imp := range direct {
			if slices.Contains(sqlDrivers, imp) && pkg != "daemon/store" && !test && pkg != "ctl/importpostal" {
				t.Errorf("%s imports %s: SQL lives in daemon/store (ctl/importpostal reads Postal's MariaDB)", pkg, imp)
			}
			if imp == "github.com/redis/go-redis/v9" && !slices.Contains(redisHolders, pkg) && !test {
				t.Errorf("%s imports go-redis: Redis commands live in queue, lease, status, ratelimit and redisconn", pkg)
			}
		}
	}
}
