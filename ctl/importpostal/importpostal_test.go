package importpostal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/importpostal"
	"github.com/postalgo/postal/ctl/importpostal/postaltest"
	"github.com/postalgo/postal/daemon/store"
)

func newCmd(f *cli.Factory) *cobra.Command { return importpostal.NewCmd(f, nil) }

// pointAt makes the installation's configuration describe p as Postal's
// MariaDB, through the environment names Postal uses.
func pointAt(e *clitest.Env, p *postaltest.Postal) {
	for _, sec := range []string{"MAIN_DB", "MESSAGE_DB"} {
		e.Env[sec+"_HOST"] = p.Conn.Host
		e.Env[sec+"_PORT"] = strconv.Itoa(p.Conn.Port)
		e.Env[sec+"_USERNAME"] = p.Conn.Username
		e.Env[sec+"_PASSWORD"] = p.Conn.Password
	}
	e.Env["MAIN_DB_DATABASE"] = p.MainDatabase
	e.Env["MESSAGE_DB_DATABASE_NAME_PREFIX"] = p.Prefix
}

func report(t *testing.T, r clitest.Result) *importpostal.Report {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("import-postal: exit %d: %v\n%s", r.Code, r.RunErr, r.Err)
	}
	var rep importpostal.Report
	if err := json.Unmarshal([]byte(r.Out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.Out)
	}
	return &rep
}

func TestArgumentsBecomeOptions(t *testing.T) {
	f := cli.NewFactory(cli.NewTestIO("", false).IOStreams, nil)
	var got *importpostal.Options
	cmd := importpostal.NewCmd(f, func(_ context.Context, o *importpostal.Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--dry-run", "--host", "db.internal", "--port", "3307", "--username", "postal", "--password", "",
		"--database", "postal_main", "--message-db-prefix", "pm"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !got.DryRun || got.Host != "db.internal" || got.Port != 3307 || got.Username != "postal" || got.Database != "postal_main" ||
		got.MessagePrefix != "pm" {
		t.Fatalf("options = %+v", got)
	}
	cmd = importpostal.NewCmd(f, func(context.Context, *importpostal.Options) error { return nil })
	cmd.SetArgs([]string{"--port", "99999"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.Execute(); cli.ExitCode(err) != 2 {
		t.Fatalf("--port 99999: %v (exit %d), want a usage error", err, cli.ExitCode(err))
	}
}

// The whole import on both store backends: a dry run writes nothing; the
// import keeps tokens, keys and DKIM; a second run changes nothing; a change
// in Postal is reported as exactly that update.
func TestImportKeepsIdentitiesAndIsIdempotent(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		p := postaltest.New(t)
		fx := p.Seed()
		pointAt(e, p)

		r := e.Run(t, newCmd, "import-postal", "--dry-run")
		if r.Code != 0 || !strings.Contains(r.Out, "Plan for importing Postal's "+p.MainDatabase) ||
			!strings.Contains(r.Out, "created   server         acme/mail") {
			t.Fatalf("dry run: exit %d\n%s\n%s", r.Code, r.Out, r.Err)
		}
		if orgs, err := e.Store.Organizations(ctx); err != nil || len(orgs) != 0 {
			t.Fatalf("dry run wrote %d organisations (%v)", len(orgs), err)
		}

		rep := report(t, e.Run(t, newCmd, "--json", "import-postal"))
		want := map[string]int{"organizations": 1, "servers": 1, "domains": 2, "credentials": 3, "endpoints": 3, "routes": 3, "route_endpoints": 1,
			"webhooks": 1, "ip_pools": 1, "ip_addresses": 1, "ip_pool_rules": 1, "track_domains": 1, "suppressions": 1}
		for kind, n := range want {
			if c := rep.Counts[kind]; c.Created != n || c.Updated != 0 || c.Unchanged != 0 {
				t.Errorf("%s: %+v, want %d created", kind, c, n)
			}
		}
		warnings := strings.Join(rep.Warnings, "\n")
		for _, w := range []string{"domain shared.example belongs to its organisation in Postal; copied to each of its 1 server(s)"} {
			if !strings.Contains(warnings, w) {
				t.Errorf("warnings lack %q:\n%s", w, warnings)
			}
		}

		// The server keeps its token: its return-path address still finds it.
		srv, err := e.Store.ServerByToken(ctx, fx.ServerToken)
		if err != nil || srv.Path() != "acme/mail" || srv.Token != strings.ToLower(fx.ServerToken) {
			t.Fatalf("server by Postal token: %+v %v", srv, err)
		}
		// The API key authenticates through the lookup the HTTP API uses; the
		// SMTP key through the one SMTP AUTH uses.
		for typ, key := range map[string]string{store.CredentialAPI: fx.APIKey, store.CredentialSMTP: fx.SMTPKey} {
			c, err := e.Store.CredentialByKey(ctx, typ, key)
			if err != nil || c.ServerID != srv.ID {
				t.Errorf("%s key: %+v %v", typ, c, err)
			}
		}
		if _, err := e.Store.CredentialByKey(ctx, store.CredentialAPI, "OldKey0123456789abcdefGH"); err == nil {
			t.Error("a soft-deleted server's key was imported")
		}
		ips, err := e.Store.Credentials(ctx, 0, store.CredentialSMTPIP)
		if err != nil || len(ips) != 1 || ips[0].CIDR != fx.SMTPIP || !ips[0].Hold {
			t.Errorf("SMTP-IP credentials = %+v %v", ips, err)
		}
		d, err := e.Store.ServerDomain(ctx, srv.ID, fx.Domain)
		if err != nil || !d.Verified() || d.DKIMIdentifierString != fx.DKIMIdentifier || !strings.Contains(d.DKIMPrivateKey, "RSA PRIVATE KEY") {
			t.Fatalf("domain = %+v %v", d, err)
		}
		if _, err := e.Store.ServerDomain(ctx, srv.ID, "shared.example"); err != nil {
			t.Errorf("organisation domain not copied to the server: %v", err)
		}
		rt, err := e.Store.RouteByToken(ctx, fx.RouteToken)
		if err != nil || rt.Address() != "support@example.com" || rt.EndpointType != store.EndpointHTTP {
			t.Errorf("route by Postal token = %+v %v", rt, err)
		}
		if extra, err := e.Store.AdditionalEndpoints(ctx, rt.ID); err != nil || len(extra) != 1 ||
			extra[0].Type != store.EndpointAddress {
			t.Errorf("additional endpoints of support@ = %+v %v, want Postal's address endpoint", extra, err)
		}
		if rp, err := e.Store.ReturnPathRoute(ctx, srv.ID); err != nil || rp.EndpointType != store.EndpointSMTP {
			t.Errorf("return-path route = %+v %v", rp, err)
		}
		if sp, err := e.Store.ServerSuppression(ctx, srv.ID, fx.Suppressed); err != nil || sp.Reason != "too many hard fails" {
			t.Errorf("suppression = %+v %v", sp, err)
		}
		if servers, err := e.Store.Servers(ctx, ""); err != nil || len(servers) != 1 {
			t.Errorf("servers = %d (%v), want only the live one", len(servers), err)
		}

		// Again: nothing changes, and the people's output says so.
		r = e.Run(t, newCmd, "import-postal")
		if r.Code != 0 || !strings.Contains(r.Out, "Nothing changed: everything already matches Postal's") {
			t.Fatalf("second import: exit %d\n%s\n%s", r.Code, r.Out, r.Err)
		}
		rep = report(t, e.Run(t, newCmd, "--json", "import-postal"))
		if len(rep.Changes) != 0 {
			t.Fatalf("third import changed %+v", rep.Changes)
		}
		for kind, n := range want {
			if c := rep.Counts[kind]; c.Unchanged != n {
				t.Errorf("re-import %s: %+v, want %d unchanged", kind, c, n)
			}
		}

		// A change in Postal is exactly what the next import updates.
		p.Exec(`UPDATE servers SET name = 'Mail (renamed)' WHERE id = 1`)
		p.Exec(`DELETE FROM webhook_events WHERE event = 'MessageBounced'`)
		rep = report(t, e.Run(t, newCmd, "--json", "import-postal"))
		got := fmt.Sprint(rep.Changes)
		if len(rep.Changes) != 2 || !strings.Contains(got, "{updated servers acme/mail}") ||
			!strings.Contains(got, "{updated webhooks acme/mail Events}") {
			t.Fatalf("after a change in Postal: %s", got)
		}
		if srv, err := e.Store.Server(ctx, "acme/mail"); err != nil || srv.Name != "Mail (renamed)" {
			t.Fatalf("renamed server = %+v %v", srv, err)
		}
	})
}

// Clear one-line errors for a database that does not answer and for one
// that is not Postal's.
func TestRefusesUnreachableOrForeignDatabase(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	p := postaltest.New(t)
	pointAt(e, p)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := e.Run(t, newCmd, "import-postal", "--host", "127.0.0.1", "--port", strconv.Itoa(closed))
	if r.Code != 1 || !strings.Contains(r.RunErr.Error(), fmt.Sprintf("cannot reach Postal's database %s at 127.0.0.1:%d", p.MainDatabase, closed)) ||
		strings.Contains(r.RunErr.Error(), "\n") {
		t.Fatalf("closed port: exit %d err %v", r.Code, r.RunErr)
	}

	p.Exec(`DROP TABLE track_domains`)
	p.Exec(`ALTER TABLE servers DROP COLUMN token`)
	r = e.Run(t, newCmd, "import-postal")
	want := "database " + p.MainDatabase + " is not a Postal 2/3 main database this importer knows: missing servers.token, track_domains"
	if r.Code != 1 || r.RunErr == nil || r.RunErr.Error() != want {
		t.Fatalf("foreign schema: exit %d err %v, want %q", r.Code, r.RunErr, want)
	}
}

// A record created here by hand in the way of an imported one stops the
// import before anything is written, saying what to do.
func TestConflictWritesNothing(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	p := postaltest.New(t)
	p.Seed()
	pointAt(e, p)
	ctx := context.Background()
	if _, err := e.Store.CreateOrganization(ctx, "Mine", "acme"); err != nil {
		t.Fatal(err)
	}
	r := e.Run(t, newCmd, "import-postal")
	if r.Code != 1 || !strings.Contains(r.RunErr.Error(), `import (nothing was written): organization "acme"`) ||
		!strings.Contains(r.RunErr.Error(), "rename or remove it, then import again") {
		t.Fatalf("conflict: exit %d err %v", r.Code, r.RunErr)
	}
	if pools, err := e.Store.IPPools(ctx); err != nil || len(pools) != 0 {
		t.Fatalf("a failed import kept %d IP pools (%v)", len(pools), err)
	}
}

// An organisation domain that one of its servers also has on its own is not
// copied onto that server (which would break the server's unique names).
func TestOrganisationDomainYieldsToServerDomain(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	p := postaltest.New(t)
	fx := p.Seed()
	pointAt(e, p)
	p.Exec(`UPDATE domains SET name = ? WHERE id = 2`, fx.Domain)
	rep := report(t, e.Run(t, newCmd, "--json", "import-postal"))
	if c := rep.Counts["domains"]; c.Created != 1 {
		t.Fatalf("domains = %+v, want only the server's own", c)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "organisation domain example.com: server acme/mail has its own domain of that name") {
		t.Fatalf("warnings = %v", rep.Warnings)
	}
	// The route on the organisation domain lands on the server's domain.
	if c := rep.Counts["routes"]; c.Created != 3 {
		t.Fatalf("routes = %+v", c)
	}
}
