package credential_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/credential"
	"github.com/postalgo/postal/daemon/store"
)

func TestCredentialCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"}); err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, credential.NewCmd, []clitest.Step{
			{Args: []string{"credential", "create", "acme/mail", "--type", "smtp", "app"}, JSON: true},
			{Args: []string{"credential", "create", "acme/mail", "--type", "API", "api", "--hold"}, Out: "This key is shown only now"},
			{Args: []string{"credential", "create", "acme/mail", "--type", "smtp-ip", "office", "--key", "192.0.2.7/24"}, JSON: true},
			{Args: []string{"credential", "create", "acme/mail", "--type", "smtp-ip", "host", "--key", "2001:db8::1"}, Out: "2001:db8::1/128"},
			{Args: []string{"credential", "create", "acme/mail", "--type", "smtp-ip", "bad", "--key", "192.0.2.0/33"}, Code: 2, ErrText: `--key "192.0.2.0/33" is not an IP address or CIDR range`},
			{Args: []string{"credential", "create", "acme/mail", "--type", "smtp-ip", "bad"}, Code: 2, ErrText: "--type smtp-ip needs --key CIDR"},
			{Args: []string{"credential", "create", "acme/mail", "--type", "smtp", "short", "--key", "abc"}, Code: 2, ErrText: "--key must be 16 to 128"},
			{Args: []string{"credential", "create", "acme/mail", "--type", "pop3", "x"}, Code: 2, ErrText: `--type "pop3": want smtp, api or smtp-ip`},
			{Args: []string{"credential", "create", "acme/mail", "x"}, Code: 2, ErrText: `required flag(s) "type" not set`},
			{Args: []string{"credential", "create", "acme/nope", "--type", "smtp", "x"}, Code: 1, ErrText: "server acme/nope not found"},
			{Args: []string{"credential", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"credential", "rm", "acme/mail", "00000000-0000-4000-a000-000000000000"}, Code: 1, ErrText: "credential 00000000-0000-4000-a000-000000000000 not found on acme/mail"},
		})
		clitest.Golden(t, "credential", got)
	})
}

// The printed key authenticates, is stored only as a hash, and is never
// shown again.
func TestCredentialKeyShownOnceAndStoredHashed(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	ctx := context.Background()
	if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"}); err != nil {
		t.Fatal(err)
	}
	res := e.Run(t, credential.NewCmd, "credential", "create", "acme/mail", "--type", "smtp", "app", "--json")
	var out credential.Created
	if err := json.Unmarshal([]byte(res.Out), &out); err != nil || res.Code != 0 {
		t.Fatalf("create: %v %v", err, res.RunErr)
	}
	if len(out.Key) != credential.KeyLength || strings.Trim(out.Key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Fatalf("key %q is not %d letters and digits", out.Key, credential.KeyLength)
	}
	c, err := e.Store.CredentialByKey(ctx, store.CredentialSMTP, out.Key)
	if err != nil || c.UUID != out.Credential.UUID {
		t.Fatalf("lookup by the printed key: %+v, %v", c, err)
	}
	for _, args := range [][]string{{"credential", "ls", "acme/mail"}, {"credential", "ls", "acme/mail", "--json"}} {
		ls := e.Run(t, credential.NewCmd, args...)
		if strings.Contains(ls.Out, out.Key) || strings.Contains(ls.Out, store.HashKey(out.Key)) {
			t.Fatalf("%v shows the key or its hash:\n%s", args, ls.Out)
		}
	}
	if a, b := credential.NewKey(), credential.NewKey(); a == b {
		t.Fatalf("two generated keys are equal: %q", a)
	}
	rm := e.Run(t, credential.NewCmd, "credential", "rm", "acme/mail", out.Credential.UUID)
	if rm.Code != 0 {
		t.Fatal(rm.RunErr)
	}
	if _, err := e.Store.CredentialByKey(ctx, store.CredentialSMTP, out.Key); err == nil {
		t.Fatal("the key still works after rm")
	}
}
