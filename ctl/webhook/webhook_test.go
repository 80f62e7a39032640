package webhook_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/webhook"
	"github.com/postalgo/postal/daemon/store"
)

func TestWebhookCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, webhook.NewCmd, []clitest.Step{
			{Args: []string{"webhook", "add", "acme/mail", "https://app.example.net/hooks", "--events", "messagesent,MessageBounced"}, JSON: true},
			{Args: []string{"webhook", "add", "acme/mail", "http://all.example.net/", "--all-events", "--no-sign", "--name", "everything"}, JSON: true},
			{Args: []string{"webhook", "add", "acme/mail", "notaurl", "--all-events"}, Code: 2, ErrText: `"notaurl" is not an http(s) URL`},
			{Args: []string{"webhook", "add", "acme/mail", "ftp://x.example.net/", "--all-events"}, Code: 2, ErrText: "is not an http(s) URL"},
			{Args: []string{"webhook", "add", "acme/mail", "https://x.example.net/"}, Code: 2, ErrText: "give --events EVENT,... or --all-events"},
			{Args: []string{"webhook", "add", "acme/mail", "https://x.example.net/", "--all-events", "--events", "MessageSent"}, Code: 2, ErrText: "not both"},
			{Args: []string{"webhook", "add", "acme/mail", "https://x.example.net/", "--events", "MessageExploded"}, Code: 2, ErrText: `unknown event "MessageExploded"`},
			{Args: []string{"webhook", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"webhook", "ls", "acme/mail"}, Out: "true     false   all events"},
			{Args: []string{"webhook", "rm", "acme/mail", "00000000-0000-4000-a000-000000000000"}, Code: 1, ErrText: "not found on acme/mail"},
		})
		clitest.Golden(t, "webhook", got)
		hooks, err := e.Store.Webhooks(ctx, srv.ID)
		if err != nil || len(hooks) != 2 {
			t.Fatalf("webhooks = %v, %v", hooks, err)
		}
		if res := e.Run(t, webhook.NewCmd, "webhook", "rm", "acme/mail", hooks[0].UUID); res.Code != 0 {
			t.Fatal(res.RunErr)
		}
		if hooks, _ := e.Store.Webhooks(ctx, srv.ID); len(hooks) != 1 {
			t.Fatalf("webhooks after rm = %d", len(hooks))
		}
	})
}
