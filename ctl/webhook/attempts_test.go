package webhook_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/webhook"
	"github.com/postalgo/postal/daemon/signing"
	"github.com/postalgo/postal/daemon/store"
)

func TestWebhookRequestsShowsTheAttemptLog(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := e.Store.CreateWebhook(ctx, srv.ID, store.NewWebhook{Name: "app", URL: "https://app.example.net/hooks", AllEvents: true, Enabled: true})
		b, _ := e.Store.CreateWebhook(ctx, srv.ID, store.NewWebhook{Name: "crm", URL: "https://crm.example.net/in", AllEvents: true, Enabled: true})
		ids, err := e.Store.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
			{ServerID: srv.ID, WebhookID: a.ID, URL: a.URL, Event: "MessageSent", Payload: `{"n":1}`},
			{ServerID: srv.ID, WebhookID: b.ID, URL: b.URL, Event: "MessageBounced", Payload: `{"n":2}`},
		})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		if _, err := e.Store.ClaimWebhookRequests(ctx, ids, "w", time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{
			{RequestID: ids[0], Owner: "w", StatusCode: 200, Result: "ok", Duration: 12 * time.Millisecond, Response: "thanks", At: at, Done: true, Success: true},
			{RequestID: ids[1], Owner: "w", StatusCode: -1, Result: "timeout", Duration: 5 * time.Second, Response: "Timed out after 5s",
				At: at.Add(time.Second), RetryAfter: at.Add(2 * time.Minute)},
		}); err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, webhook.NewCmd, []clitest.Step{
			{Args: []string{"webhook", "requests", "acme/mail"}, JSON: true},
			{Args: []string{"webhook", "requests", "acme/mail", "--failed"}, JSON: true},
			{Args: []string{"webhook", "requests", "acme/mail", "--webhook", "app"}, JSON: true},
			{Args: []string{"webhook", "requests", "acme/mail"}, Out: "MessageBounced  https://crm.example.net/in     1        -1      timeout  5000  yes"},
			{Args: []string{"webhook", "requests", "acme/mail", "--webhook", "nope"}, Code: 1, ErrText: "webhook nope not found on acme/mail"},
		})
		clitest.Golden(t, "requests", got)
	})
}

func TestWebhookTestSendsASignedEvent(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	ctx := context.Background()
	priv, err := signing.Generate(signing.MinBits)
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.WriteFile(filepath.Join(e.Dir, "signing.key"), priv, false); err != nil {
		t.Fatal(err)
	}
	bodies := make(chan []byte, 2)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig, _ := base64.StdEncoding.DecodeString(r.Header.Get("X-Postal-Signature-256"))
		sum := sha256.Sum256(body)
		if rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		bodies <- body
		if strings.HasSuffix(r.URL.Path, "/broken") {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("boom"))
			return
		}
		_, _ = w.Write([]byte("got it"))
	}))
	defer rcv.Close()
	if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
	srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateWebhook(ctx, srv.ID, store.NewWebhook{Name: "good", URL: rcv.URL + "/ok", Events: []string{"MessageSent"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	bad, err := e.Store.CreateWebhook(ctx, srv.ID, store.NewWebhook{Name: "bad", URL: rcv.URL + "/broken", AllEvents: true, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}

	res := e.Run(t, webhook.NewCmd, "webhook", "test", "acme/mail", "good")
	if res.Code != 0 || !strings.Contains(res.Out, "Status:    200") || !strings.Contains(res.Out, "Response:  got it") {
		t.Fatalf("test good: exit %d, err %v, out:\n%s", res.Code, res.RunErr, res.Out)
	}
	var env struct {
		Event   string
		Payload map[string]any
	}
	if err := json.Unmarshal(<-bodies, &env); err != nil || env.Event != "MessageSent" || env.Payload["status"] != "Sent" {
		t.Errorf("received %+v, %v", env, err)
	}

	res = e.Run(t, webhook.NewCmd, "webhook", "test", "acme/mail", bad.UUID, "--event", "DomainDNSError", "--json")
	if res.Code != 1 || !strings.Contains(res.RunErr.Error(), "did not accept") {
		t.Fatalf("test bad: exit %d, err %v", res.Code, res.RunErr)
	}
	var out webhook.TestResult
	if err := json.Unmarshal([]byte(res.Out), &out); err != nil || out.StatusCode != 500 || out.Result != "http_error" ||
		out.Response != "boom" || out.Event != "DomainDNSError" {
		t.Errorf("json = %+v, %v", out, err)
	}
	if err := json.Unmarshal(<-bodies, &env); err != nil || env.Payload["server"].(map[string]any)["permalink"] != "mail" {
		t.Errorf("received %+v, %v", env, err)
	}
}
