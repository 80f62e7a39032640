package suppression_test

import (
	"context"
	"testing"
	"time"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/suppression"
	"github.com/postalgo/postal/daemon/store"
)

func TestSuppressionCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, suppression.NewCmd, []clitest.Step{
			{Args: []string{"suppression", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"suppression", "add", "acme/mail", "Bob@Example.net", "--reason", "asked us"}, JSON: true},
			{Args: []string{"suppression", "add", "acme/mail", "carol@example.net", "--days", "2"}, Out: "Suppressed carol@example.net on acme/mail until"},
			{Args: []string{"suppression", "add", "acme/mail", "not-an-address"}, Code: 2, ErrText: `"not-an-address" is not an e-mail address`},
			{Args: []string{"suppression", "add", "acme/nope", "a@example.net"}, Code: 1, ErrText: "server acme/nope not found"},
			{Args: []string{"suppression", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"suppression", "rm", "acme/mail", "bob@example.net"}, JSON: true},
			{Args: []string{"suppression", "rm", "acme/mail", "bob@example.net"}, Code: 1, ErrText: "bob@example.net is not suppressed on acme/mail"},
		})
		clitest.Golden(t, "suppression", got)
		s, err := e.Store.ServerSuppression(ctx, srv.ID, "carol@example.net")
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(s.KeepUntil); d < 47*time.Hour || d > 49*time.Hour {
			t.Fatalf("--days 2 keeps the entry for %s", d)
		}
	})
}
