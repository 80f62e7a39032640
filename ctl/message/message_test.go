package message_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/ctl/cli"
	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/message"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

const body = "From: m@example.com\r\nTo: a@dest.test\r\nSubject: Hello\r\n\r\nHi there.\r\n"

// messages stores three outgoing messages: the first held, the second sent
// (one delivery), the third still queued.
func messages(t *testing.T, e *clitest.Env) []store.Accepted {
	t.Helper()
	ctx := context.Background()
	fx := storetest.NewFixture(t, e.Store, "example.com", "")
	var msgs []store.NewMessage
	for _, r := range []string{"held@dest.test", "sent@dest.test", "queued@dest.test"} {
		msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r, MailFrom: "m@example.com",
			Subject: "Hello", MessageID: "<1@example.com>", DomainID: fx.Domain.ID, Queue: true, QueueDomain: "dest.test"})
	}
	acc, err := e.Store.InsertSubmissions(ctx, []store.Submission{{Raw: []byte(body), Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	a := acc[0]
	now := time.Now()
	if _, err := e.Store.ClaimQueued(ctx, []int64{a[0].QueuedID, a[1].QueuedID}, "w", now.Add(time.Second), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	applied, err := e.Store.RecordOutcomes(ctx, []store.Outcome{
		store.Hold(&store.QueuedMessage{ID: a[0].QueuedID, MessageID: a[0].MessageID, LockedBy: "w"}, time.Time{}, "Held by a hold rule"),
		store.Sent(&store.QueuedMessage{ID: a[1].QueuedID, MessageID: a[1].MessageID, LockedBy: "w"},
			store.NewDelivery{Details: "Message for sent@dest.test accepted by mx.dest.test",
				Output: "250 2.0.0 OK", SentWithSSL: true, Time: 0.25}),
	})
	if err != nil || !applied[0] || !applied[1] {
		t.Fatalf("record outcomes: %v, %v", applied, err)
	}
	if _, err := e.Store.InsertWebhookRequests(ctx, []store.NewWebhookRequest{{ServerID: fx.Server.ID, MessageID: a[1].MessageID,
		URL: "https://hooks.example.com/postal", Event: "MessageSent", Payload: `{"status":"Sent"}`}}); err != nil {
		t.Fatal(err)
	}
	return a
}

type step struct {
	args    []string
	code    int
	errText string
	out     []string
	json    bool
}

// run executes steps in order and returns the transcript of the json ones.
func run(t *testing.T, e *clitest.Env, steps []step) string {
	t.Helper()
	var b strings.Builder
	for _, s := range steps {
		args := s.args
		if s.json {
			args = append(append([]string{}, args...), "--json")
		}
		res := e.Run(t, message.NewCmd, args...)
		if res.Code != s.code {
			t.Fatalf("%v: exit %d, want %d (err %v, out %q)", args, res.Code, s.code, res.RunErr, res.Out)
		}
		if s.errText != "" && (res.RunErr == nil || !strings.Contains(res.RunErr.Error(), s.errText)) {
			t.Fatalf("%v: error %v, want one containing %q", args, res.RunErr, s.errText)
		}
		for _, o := range s.out {
			if !strings.Contains(res.Out, o) {
				t.Fatalf("%v: output lacks %q:\n%s", args, o, res.Out)
			}
		}
		if s.json {
			b.WriteString("$ " + strings.Join(s.args, " ") + "\n" + clitest.Normalize(t, res.Out, volatile))
		}
	}
	return b.String()
}

func TestMessageCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		a := messages(t, e)
		rdb, keys := e.Redis(t)
		held, sent, queued := fmt.Sprint(a[0].MessageID), fmt.Sprint(a[1].MessageID), fmt.Sprint(a[2].MessageID)
		transcript := run(t, e, []step{
			{args: []string{"message", "show", sent}, json: true},
			{args: []string{"message", "show", sent}, out: []string{"Status:      Sent", "To:          sent@dest.test", "Queued:      no",
				"Sent    Message for sent@dest.test accepted by mx.dest.test  250 2.0.0 OK  yes  0.25s", "MessageSent  1        pending, due"}},
			{args: []string{"message", "show", a[1].Token}, out: []string{"Message:     " + sent + " (token " + a[1].Token + ")"}},
			{args: []string{"message", "show", queued}, out: []string{"Status:      Pending", "Queued:      yes (row 3, dest.test, attempts 0", "No deliveries yet."}},
			{args: []string{"message", "show", held}, out: []string{"Status:      Held, held", "Details:     Held by a hold rule"}},
			{args: []string{"message", "ls", "acme/mail"}, json: true},
			{args: []string{"message", "ls", "acme/mail", "--status", "held"}, out: []string{"Held (held)  m@example.com  held@dest.test  Hello"}},
			{args: []string{"message", "ls", "acme/mail", "--limit", "1"}, out: []string{"queued@dest.test", "Showing 1; the next page: --before " + queued + "."}},
			{args: []string{"message", "ls", "acme/mail", "--limit", "1", "--before", queued}, out: []string{"sent@dest.test", "Showing 1; the next page: --before " + sent + "."}},
			{args: []string{"message", "ls", "--to", "held@dest.test", "--since", "1h", "--scope", "outgoing"}, out: []string{"held@dest.test"}},
			{args: []string{"message", "ls", "--subject", "Hello", "--from", "m@example.com", "--until", "1h"}, out: []string{"No messages."}},
			{args: []string{"message", "ls", "acme/mail", "--status", "Bounced"}, out: []string{"No messages."}},
			{args: []string{"message", "release", held}, json: true},
			{args: []string{"message", "release", held}, code: 1, errText: "message " + held + " is already queued"},
			{args: []string{"message", "release", sent}, code: 1, errText: "message " + sent + " is not held (status Sent); only held messages can be released"},
			{args: []string{"message", "release", "999"}, code: 1, errText: "message 999 not found"},
			{args: []string{"message", "show", "999"}, code: 1, errText: "message 999 not found; list a server's messages with `postalctl message ls ORG/SERVER`"},
			{args: []string{"message", "show", "no-such-token"}, code: 1, errText: "message no-such-token not found"},
			{args: []string{"message", "ls", "acme/nope"}, code: 1, errText: "server acme/nope not found"},
			{args: []string{"message", "hold", queued}, json: true},
			{args: []string{"message", "hold", queued}, code: 1, errText: "message " + queued + " is not queued (status Held); nothing to hold"},
			{args: []string{"message", "ls", "--held"}, out: []string{"Held (held)  m@example.com  queued@dest.test"}},
			{args: []string{"message", "retry", queued}, code: 1, errText: "message " + queued + " is held; release it with `postalctl message release " + queued + "`"},
			{args: []string{"message", "cancel", queued}, out: []string{"Removed message " + queued + " from the queue (HoldCancelled)."}},
			{args: []string{"message", "show", queued}, out: []string{"Status:      HoldCancelled", "Queued:      no"}},
			{args: []string{"message", "retry", sent}, code: 1, errText: "message " + sent + " has status Sent; only queued, SoftFail and HardFail messages can be retried"},
			{args: []string{"message", "retry", held}, json: true},
			{args: []string{"message", "delete", sent}, out: []string{"Deleted message " + sent + "."}},
			{args: []string{"message", "show", sent}, code: 1, errText: "message " + sent + " not found"},
		})
		clitest.Golden(t, "message", transcript)

		// The release added a dispatch entry for the new queued row.
		q, err := e.Store.QueuedForMessage(context.Background(), a[0].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		missing, err := queue.New(queue.Options{Client: rdb, Keys: keys}).Missing(context.Background(), queue.Outgoing, []int64{q.ID})
		if err != nil || len(missing) != 0 {
			t.Fatalf("released row %d not dispatched: missing %v, %v", q.ID, missing, err)
		}
	})
}

// --raw prints the stored body byte for byte, or adds it to the JSON;
// without it the body never appears.
func TestMessageShowRaw(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	a := messages(t, e)
	id := fmt.Sprint(a[1].MessageID)
	if res := e.Run(t, message.NewCmd, "message", "show", id, "--raw"); res.Code != 0 || res.Out != body {
		t.Fatalf("--raw: exit %d, out %q; want the body", res.Code, res.Out)
	}
	res := e.Run(t, message.NewCmd, "message", "show", id, "--raw", "--json")
	var d message.Details
	if err := json.Unmarshal([]byte(res.Out), &d); err != nil || d.Raw == nil || *d.Raw != body {
		t.Fatalf("--raw --json: %v, raw %v", err, d.Raw)
	}
	for _, args := range [][]string{{"message", "show", id}, {"message", "show", id, "--json"}} {
		if res := e.Run(t, message.NewCmd, args...); strings.Contains(res.Out, "Hi there.") {
			t.Errorf("%v printed the body:\n%s", args, res.Out)
		}
	}
}

// A release whose dispatch fails is still a release: the row is due, the
// output says reconciliation will dispatch it, and the exit code is 0.
func TestMessageReleaseWithRedisDown(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	a := messages(t, e)
	e.Env["REDIS_URL"] = clitest.ClosedRedisURL(t)
	id := fmt.Sprint(a[0].MessageID)
	res := e.Run(t, message.NewCmd, "message", "release", id, "--json")
	var r message.Released
	if err := json.Unmarshal([]byte(res.Out), &r); err != nil || res.Code != 0 || r.Dispatched || r.DispatchError == "" {
		t.Fatalf("exit %d, %v, result %+v", res.Code, err, r)
	}
	due, err := e.Store.DueQueued(context.Background(), time.Now().Add(time.Second), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, q := range due {
		found = found || q.ID == r.QueuedID
	}
	if !found {
		t.Fatalf("released row %d is not due: %+v", r.QueuedID, due)
	}
	e2 := clitest.New(t, "sqlite", true)
	a2 := messages(t, e2)
	e2.Env["REDIS_URL"] = e.Env["REDIS_URL"]
	human := e2.Run(t, message.NewCmd, "message", "release", fmt.Sprint(a2[0].MessageID))
	if human.Code != 0 || !strings.Contains(human.Out, "the requeuer's reconciliation will dispatch it") {
		t.Fatalf("exit %d, out %q", human.Code, human.Out)
	}
}

func TestMessageUsageErrors(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"show without id", []string{"message", "show"}, "takes a message ID or TOKEN"},
		{"release two ids", []string{"message", "release", "1", "2"}, "takes a message ID or TOKEN"},
		{"unknown status", []string{"message", "ls", "acme/mail", "--status", "Lost"}, `--status "Lost" is not a message status`},
		{"zero limit", []string{"message", "ls", "acme/mail", "--limit", "0"}, "--limit must be between 1 and 1000"},
		{"bad path", []string{"message", "ls", "acme"}, `"acme" is not ORG/SERVER`},
		{"bad since", []string{"message", "ls", "--since", "yesterday"}, `"yesterday" is neither a duration back from now`},
		{"bad scope", []string{"message", "ls", "--scope", "sideways"}, `--scope "sideways" is not outgoing or incoming`},
		{"hold without id", []string{"message", "hold"}, "takes a message ID or TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.Run(t, message.NewCmd, tt.args...)
			if res.Code != cli.ExitUsage || res.RunErr == nil || !strings.Contains(res.RunErr.Error(), tt.err) {
				t.Fatalf("exit %d, err %v; want exit 2 with %q", res.Code, res.RunErr, tt.err)
			}
		})
	}
}

// TestShowFindsAnAllDigitToken: a token made only of digits (one in about
// 1,800 random ones) is found by `message show` although it parses as an
// id; a number that is an id still names that message.
func TestShowFindsAnAllDigitToken(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		fx := storetest.NewFixture(t, e.Store, "example.com", "")
		acc, err := e.Store.InsertSubmissions(context.Background(), []store.Submission{{Raw: []byte(body), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "first@dest.test", MailFrom: "m@example.com"},
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "digits@dest.test", MailFrom: "m@example.com", Token: "3092844455750353"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		run(t, e, []step{
			{args: []string{"message", "show", "3092844455750353"}, out: []string{"digits@dest.test", "(token 3092844455750353)"}},
			{args: []string{"message", "show", fmt.Sprint(acc[0][0].MessageID)}, out: []string{"first@dest.test"}},
			{args: []string{"message", "show", "99999999"}, code: 1, errText: "message 99999999 not found"},
		})
	})
}

// Actions that reach Redis are refused, before anything changes, when
// another installation owns the key prefix; reading still works.
func TestMessageActionsRefuseAnotherInstallationsPrefix(t *testing.T) {
	e := clitest.New(t, "sqlite", true)
	a := messages(t, e)
	ctx := context.Background()
	rdb, keys := e.Redis(t)
	if err := redisconn.ClaimPrefix(ctx, rdb, keys, "ffffffffffffffffffffffffffffffff"); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"release", "retry", "hold", "cancel", "delete"} {
		ref := fmt.Sprint(a[2].MessageID)
		if verb == "release" {
			ref = fmt.Sprint(a[0].MessageID)
		}
		res := e.Run(t, message.NewCmd, "message", verb, ref)
		if res.Code != cli.ExitUsage || !strings.Contains(fmt.Sprint(res.RunErr), `belongs to another installation (id ffffffffffffffffffffffffffffffff`) {
			t.Fatalf("%s: exit %d, %v; want a refusal", verb, res.Code, res.RunErr)
		}
	}
	for i, want := range []string{store.StatusHeld, store.StatusSent, store.StatusPending} {
		m, err := e.Store.Message(ctx, a[i].MessageID)
		if err != nil || m.Status != want {
			t.Fatalf("message %d after the refusals: %v, %v; want %s", a[i].MessageID, m, err, want)
		}
	}
	if res := e.Run(t, message.NewCmd, "message", "show", fmt.Sprint(a[2].MessageID)); res.Code != 0 {
		t.Fatalf("show: exit %d, %v", res.Code, res.RunErr)
	}
	id, err := e.Store.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redisconn.ResetPrefix(ctx, rdb, keys, id); err != nil {
		t.Fatal(err)
	}
	if res := e.Run(t, message.NewCmd, "message", "hold", fmt.Sprint(a[2].MessageID)); res.Code != 0 {
		t.Fatalf("hold once the prefix is ours: exit %d, %v", res.Code, res.RunErr)
	}
}
