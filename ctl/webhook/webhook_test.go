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
		got := run(t, e, webhook.NewCmd, []step{
			{args: []string{"webhook", "add", "acme/mail", "https://app.example.net/hooks", "--events", "messagesent,MessageBounced"}, json: true},
			{args: []string{"webhook", "add", "acme/mail", "http://all.example.net/", "--all-events", "--no-sign", "--name", "everything"}, json: true},
			{args: []string{"webhook", "add", "acme/mail", "notaurl", "--all-events"}, code: 2, errText: `"notaurl" is not an http(s) URL`},
			{args: []string{"webhook", "add", "acme/mail", "ftp://x.example.net/", "--all-events"}, code: 2, errText: "is not an http(s) URL"},
			{args: []string{"webhook", "add", "acme/mail", "https://x.example.net/"}, code: 2, errText: "give --events EVENT,... or --all-events"},
			{args: []string{"webhook", "add", "acme/mail", "https://x.example.net/", "--all-events", "--events", "MessageSent"}, code: 2, errText: "not both"},
			{args: []string{"webhook", "add", "acme/mail", "https://x.example.net/", "--events", "MessageExploded"}, code: 2, errText: `unknown event "MessageExploded"`},
			{args: []string{"webhook", "ls", "acme/mail"}, json: true},
			{args: []string{"webhook", "ls", "acme/mail"}, out: "true     false   all events"},
			{args: []string{"webhook", "rm", "acme/mail", "00000000-0000-4000-a000-000000000000"}, code: 1, errText: "not found on acme/mail"},
		})
		golden(t, "webhook", got)
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
