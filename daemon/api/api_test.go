package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/postalgo/postal/daemon/api"
	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/store"
)

func manyHeaders(n int) map[string]any {
	h := map[string]any{}
	for i := range n {
		h[fmt.Sprintf("X-H%d", i)] = "v"
	}
	return h
}

func addrs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@dest.test", prefix, i)
	}
	return out
}

// Envelope and authentication: Postal's checks in order, every one HTTP 200.
func TestAuthentication(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		body := map[string]any{"id": 1}
		wantError(t, e.postJSON("messages/message", body, "X-Server-API-Key", ""), "AccessDenied", "Must be authenticated as a server.")
		wantError(t, e.postJSON("messages/message", body, "X-Server-API-Key", "   "), "AccessDenied", "")
		a := e.postJSON("messages/message", body, "X-Server-API-Key", "nope-not-a-key")
		wantError(t, a, "InvalidServerAPIKey", "The API token provided in X-Server-API-Key was not valid.")
		if a.data(t)["token"] != "nope-not-a-key" {
			t.Errorf("token not echoed: %s", a.Data)
		}
		if !bytes.HasSuffix(a.Data, []byte(`"code":"InvalidServerAPIKey"}`)) || !bytes.HasPrefix(a.Data, []byte(`{"message":`)) {
			t.Errorf("data order: %s", a.Data)
		}
		// An SMTP credential's key is not an API key.
		wantError(t, e.postJSON("messages/message", body, "X-Server-API-Key", e.fx.SMTPKey), "InvalidServerAPIKey", "")
		// The envelope's own order and types.
		if !regexp.MustCompile(`^\{"status":"error","time":\d+\.\d+,"flags":\{\},"data":\{`).Match(a.Raw) {
			t.Errorf("envelope %s", a.Raw)
		}

		ctx := context.Background()
		if err := e.s.SetOrganizationSuspended(ctx, e.fx.Org.ID, true, "unpaid"); err != nil {
			t.Fatal(err)
		}
		waitAnswer(t, func() answer { return e.postJSON("messages/message", body) }, "ServerSuspended")
		a = e.postJSON("messages/message", body)
		if string(a.Data) != `{"code":"ServerSuspended"}` {
			t.Errorf("suspended data %s", a.Data)
		}
		if err := e.s.SetOrganizationSuspended(ctx, e.fx.Org.ID, false, ""); err != nil {
			t.Fatal(err)
		}
		waitAnswer(t, func() answer { return e.postJSON("messages/message", body) }, "MessageNotFound")
		if _, err := e.s.SuspendServer(ctx, e.fx.Server.ID, "abuse"); err != nil {
			t.Fatal(err)
		}
		waitAnswer(t, func() answer { return e.postJSON("messages/message", body) }, "ServerSuspended")
	})
}

// waitAnswer polls until the answer's code is code (the credential cache
// takes up to its TTL to notice a change).
func waitAnswer(t *testing.T, fn func() answer, code string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := fn()
		var d struct{ Code string }
		_ = json.Unmarshal(a.Data, &d)
		if d.Code == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("answer %s, want code %s", a.Raw, code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Routes: the four actions for GET, POST, PUT and PATCH; anything else 404.
func TestRoutes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for _, m := range []string{"GET", "POST", "PUT", "PATCH"} {
			req, _ := http.NewRequest(m, e.url+"/api/v1/messages/message?params="+`%7B%22id%22%3A99%7D`, nil)
			req.Header.Set("X-Server-API-Key", e.key)
			wantError(t, e.do(req), "MessageNotFound", "")
		}
		for _, c := range []struct{ method, path string }{{"DELETE", "/api/v1/send/message"}, {"POST", "/api/v1/send/nothing"},
			{"POST", "/api/v1/"}, {"POST", "/api/v2/send/message"}} {
			req, _ := http.NewRequest(c.method, e.url+c.path, nil)
			req.Header.Set("X-Server-API-Key", e.key)
			if a := e.do(req); a.HTTP != 404 {
				t.Errorf("%s %s: HTTP %d", c.method, c.path, a.HTTP)
			}
		}
	})
}

// send/message validation: Postal's codes, texts and order (the first
// failure only), then ours.
func TestSendMessageValidation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ok := map[string]any{"to": []string{"a@dest.test"}, "from": "x@example.com", "plain_body": "hi"}
		with := func(kv ...any) map[string]any {
			m := map[string]any{}
			for k, v := range ok {
				m[k] = v
			}
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(m, kv[i].(string))
					continue
				}
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		cases := []struct {
			name    string
			body    any
			code    string
			message string
		}{
			{"nothing at all", map[string]any{}, "NoRecipients", "There are no recipients defined to receive this message"},
			{"empty lists", with("to", []string{}, "cc", []string{}, "bcc", []string{}), "NoRecipients", ""},
			{"recipients come before content", map[string]any{"from": "x@example.com"}, "NoRecipients", ""},
			{"51 to", with("to", addrs("t", 51)), "TooManyToAddresses", "The maximum number of To addresses has been reached (maximum 50)"},
			{"51 cc", with("cc", addrs("c", 51)), "TooManyCCAddresses", "The maximum number of CC addresses has been reached (maximum 50)"},
			{"51 bcc", with("bcc", addrs("b", 51)), "TooManyBCCAddresses", "The maximum number of BCC addresses has been reached (maximum 50)"},
			{"to before cc", with("to", addrs("t", 51), "cc", addrs("c", 51)), "TooManyToAddresses", ""},
			{"no content", with("plain_body", nil), "NoContent", "There is no content defined for this e-mail"},
			{"blank content", with("plain_body", "  ", "html_body", ""), "NoContent", ""},
			{"content before from", with("plain_body", nil, "from", nil), "NoContent", ""},
			{"no from", with("from", nil), "FromAddressMissing", "The From address is missing and is required"},
			{"unverified domain", with("from", "x@elsewhere.test"), "UnauthenticatedFromAddress",
				"The From address is not authorised to send mail from this server"},
			{"sender ignored without allow_sender", with("from", "x@elsewhere.test", "sender", "y@example.com"), "UnauthenticatedFromAddress", ""},
			{"from before attachments", with("from", "x@elsewhere.test", "attachments", []any{map[string]any{"data": "aGk="}}),
				"UnauthenticatedFromAddress", ""},
			{"attachment without name", with("attachments", []any{map[string]any{"data": "aGk="}}), "AttachmentMissingName",
				"An attachment is missing a name"},
			{"attachment without data", with("attachments", []any{map[string]any{"name": "a.txt", "data": ""}}), "AttachmentMissingData",
				"An attachment is missing data"},
			{"attachment data that decodes to nothing", with("attachments", []any{map[string]any{"name": "a.txt", "data": "!!"}}),
				"AttachmentMissingData", ""},
			{"bad header name", with("headers", map[string]any{"Bad Name": "x"}), "InvalidHeader", ""},
			{"bad recipient", with("to", []string{"not an address"}), "InvalidRecipient", ""},
			{"101 attachments", with("attachments", make([]any, 101)), "TooManyAttachments", ""},
			{"101 headers", with("headers", manyHeaders(101)), "TooManyHeaders", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, e.postJSON("send/message", c.body), c.code, c.message)
			})
		}
		// Nothing was stored by any of them.
		if ms, err := e.s.ServerMessages(context.Background(), e.fx.Server.ID, "", 10); err != nil || len(ms) != 0 {
			t.Fatalf("stored %d messages, %v", len(ms), err)
		}
		// Parameter errors where Postal fails with HTTP 400/500.
		wantParamError(t, e.postJSON("send/message", `{"to": [`), "")
		wantParamError(t, e.postJSON("send/message", `[1, 2]`), "The request body must be a JSON object")
		wantParamError(t, e.postJSON("send/message", map[string]any{"subject": []any{1}}), "`subject` parameter must be a string")
		wantParamError(t, e.postJSON("send/message", strings.Repeat("[", 40)+strings.Repeat("]", 40)), "")
		req, _ := http.NewRequest("POST", e.url+"/api/v1/send/message", strings.NewReader("params=%7Bnot+json"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Server-API-Key", e.key)
		wantParamError(t, e.do(req), "")
	})
}

// The wire forms of the three official clients all send.
func TestSendMessageClients(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		uuidAt := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}@rp\.postal\.test$`)
		token := regexp.MustCompile(`^[a-zA-Z0-9]{16}$`)
		check := func(t *testing.T, a answer, rcpts ...string) map[string]any {
			t.Helper()
			d := success(t, a)
			if id, _ := d["message_id"].(string); !uuidAt.MatchString(id) {
				t.Errorf("message_id %v", d["message_id"])
			}
			msgs, _ := d["messages"].(map[string]any)
			if len(msgs) != len(rcpts) {
				t.Fatalf("messages %v, want %v", msgs, rcpts)
			}
			for _, r := range rcpts {
				m, _ := msgs[r].(map[string]any)
				if _, err := m["id"].(json.Number).Int64(); err != nil {
					t.Errorf("%s id %v", r, m["id"])
				}
				if tok, _ := m["token"].(string); !token.MatchString(tok) {
					t.Errorf("%s token %v", r, m["token"])
				}
			}
			return d
		}
		// @atech/postal: JSON, every list present (possibly empty), headers
		// and attachments always sent.
		check(t, e.postJSON("send/message", map[string]any{"to": []string{"Bob <bob@dest.test>"}, "cc": []string{}, "bcc": []string{},
			"headers": map[string]any{}, "attachments": []any{}, "from": "Alice <alice@example.com>", "subject": "node",
			"plain_body": "hello"}), "bob@dest.test")
		// postal-ruby: form field `params`.
		check(t, e.postForm("send/message", map[string]any{"to": []string{"carol@dest.test"}, "from": "alice@example.com",
			"html_body": "<p>hi</p>"}), "carol@dest.test")
		// The same `params` field in a multipart form body.
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		_ = mw.WriteField("params", `{"to": ["frank@dest.test"], "from": "alice@example.com", "plain_body": "multipart"}`)
		_ = mw.Close()
		req, _ := http.NewRequest("PUT", e.url+"/api/v1/send/message", &mp)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("X-Server-API-Key", e.key)
		check(t, e.do(req), "frank@dest.test")
		// postal-php: JSON with every field, nulls included.
		check(t, e.postJSON("send/message", map[string]any{"to": []string{"dan@dest.test"}, "cc": []string{}, "bcc": []string{"eve@dest.test"},
			"from": "alice@example.com", "sender": nil, "subject": nil, "tag": nil, "reply_to": nil, "plain_body": "x",
			"html_body": nil, "headers": nil, "attachments": []any{}}), "dan@dest.test", "eve@dest.test")
		// A string list is split on commas; a recipient twice appears once
		// (the last message), as in Postal.
		d := check(t, e.postJSON("send/message", map[string]any{"to": "a@dest.test, b@dest.test", "cc": []string{"a@dest.test"},
			"from": "alice@example.com", "plain_body": "x"}), "a@dest.test", "b@dest.test")
		aID, _ := d["messages"].(map[string]any)["a@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		bID, _ := d["messages"].(map[string]any)["b@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		if aID <= bID {
			t.Errorf("duplicate kept the first message (%d), want the last (> %d)", aID, bID)
		}
	})
}

// The stored message: Postal's header order and MIME layout, one message
// row per recipient queued at once, tag and bounce stored.
func TestSendMessageStored(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Raw JSON: the custom headers' order is the order sent.
		a := e.postJSON("send/message", `{"to": ["Bob <bob@dest.test>"], "cc": ["carol@dest.test"], "bcc": ["hidden@dest.test"],
			"from": "Alice <alice@example.com>", "reply_to": "replies@example.com", "subject": "Grüße",
			"plain_body": "plain text", "html_body": "<p>html</p>", "tag": "welcome", "bounce": 0,
			"headers": {"X-Zebra": "1", "X-Alpha": 2, "From": "ignored@evil.test", "X-Inject": "a\r\nBcc: x@evil.test"},
			"attachments": [{"name": "report.pdf", "content_type": "application/pdf", "data": "`+
			base64.StdEncoding.EncodeToString([]byte("%PDF-1.4"))+`"}, "junk"]}`)
		d := success(t, a)
		msgs := d["messages"].(map[string]any)
		if len(msgs) != 3 {
			t.Fatalf("messages %v", msgs)
		}
		id, _ := msgs["bob@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		m, err := e.s.Message(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Scope != store.ScopeOutgoing || m.RcptTo != "bob@dest.test" || m.MailFrom != "alice@example.com" || m.Tag != "welcome" ||
			!m.Bounce || !m.ReceivedWithSSL || m.Subject != "Grüße" || m.MessageID != d["message_id"] || m.DomainID != e.fx.Domain.ID {
			t.Errorf("stored message %+v", m)
		}
		if q, err := e.s.QueuedForMessage(ctx, id); err != nil || q.Domain != "dest.test" {
			t.Errorf("queued %+v, %v", q, err)
		}
		raw, err := e.s.RawMessage(ctx, m.RawMessageID)
		if err != nil {
			t.Fatal(err)
		}
		head := string(raw[:bytes.Index(raw, []byte("\r\n\r\n"))])
		var names []string
		for _, line := range strings.Split(head, "\r\n") {
			if line != "" && line[0] != ' ' && line[0] != '\t' {
				names = append(names, line[:strings.IndexByte(line, ':')])
			}
		}
		want := []string{"Received", "Date", "From", "Reply-To", "To", "Cc", "Message-ID", "Subject", "Mime-Version",
			"Content-Type", "Content-Transfer-Encoding", "X-Zebra", "X-Alpha", "X-Inject"}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("header order %v\nwant %v", names, want)
		}
		if !regexp.MustCompile(`(?m)^Received: from api \(client\.test \[127\.0\.0\.1\]\)\s+by postal\.test with HTTP; `).MatchString(head) {
			t.Errorf("Received: %s", head)
		}
		for _, bad := range []string{"ignored@evil.test", "hidden@dest.test", "\r\nBcc"} {
			if strings.Contains(head, bad) {
				t.Errorf("header has %q:\n%s", bad, head)
			}
		}
		if !strings.Contains(head, "Subject: =?UTF-8?q?Gr=C3=BC=C3=9Fe?=") || !strings.Contains(head, "From: Alice <alice@example.com>") {
			t.Errorf("header:\n%s", head)
		}
		// multipart/mixed [ multipart/alternative [plain, html], attachment ]
		ent, err := message.Read(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		layout := describe(t, ent)
		if layout != "multipart/mixed[multipart/alternative[text/plain(plain text),text/html(<p>html</p>)],application/pdf attachment report.pdf(%PDF-1.4)]" {
			t.Errorf("layout %s", layout)
		}
		// Without a tag parameter the last X-Postal-Tag header gives it.
		d2 := success(t, e.postJSON("send/message", `{"to": ["t@dest.test"], "from": "alice@example.com", "plain_body": "x",
			"headers": {"X-Postal-Tag": "one", "x-postal-tag": "two"}}`))
		tid, _ := d2["messages"].(map[string]any)["t@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		if tm, err := e.s.Message(ctx, tid); err != nil || tm.Tag != "two" {
			t.Errorf("header tag %q, %v", tm.Tag, err)
		}
		// Every recipient has its row; all share the raw message.
		for _, r := range []string{"carol@dest.test", "hidden@dest.test"} {
			rid, _ := msgs[r].(map[string]any)["id"].(json.Number).Int64()
			if m2, err := e.s.Message(ctx, rid); err != nil || m2.RcptTo != r || m2.RawMessageID != m.RawMessageID {
				t.Errorf("%s: %+v %v", r, m2, err)
			}
		}
	})
}

// describe renders an entity tree as type[children] or type(body).
func describe(t *testing.T, e *message.Entity) string {
	t.Helper()
	mt, _, _ := e.Header.ContentType()
	if mr := e.MultipartReader(); mr != nil {
		var parts []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, describe(t, p))
		}
		return mt + "[" + strings.Join(parts, ",") + "]"
	}
	b, _ := io.ReadAll(e.Body)
	if disp, p, err := e.Header.ContentDisposition(); err == nil && disp != "" {
		mt += " " + disp + " " + p["filename"]
	}
	return mt + "(" + strings.TrimSpace(string(b)) + ")"
}

// From authorisation: use_for_any, and Sender with allow_sender.
func TestSendMessageAuthorisedDomains(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		body := map[string]any{"to": []string{"a@dest.test"}, "from": "x@other.test", "sender": "y@example.com", "plain_body": "x"}
		wantError(t, e.postJSON("send/message", body), "UnauthenticatedFromAddress", "")
		yes := true
		if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{AllowSender: &yes}); err != nil {
			t.Fatal(err)
		}
		waitAnswer(t, func() answer { return e.postJSON("send/message", body) }, "")
		// An unverified use_for_any domain authorises nothing; a verified one anything.
		any1, err := e.s.CreateDomain(ctx, e.fx.Server.ID, store.NewDomain{Name: "any.test", VerificationToken: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.s.SetDomainUseForAny(ctx, any1.ID, true); err != nil {
			t.Fatal(err)
		}
		other := map[string]any{"to": []string{"a@dest.test"}, "from": "x@other.test", "plain_body": "x"}
		wantError(t, e.postJSON("send/message", other), "UnauthenticatedFromAddress", "")
		if err := e.s.SetDomainVerified(ctx, any1.ID, true); err != nil {
			t.Fatal(err)
		}
		d := success(t, e.postJSON("send/message", other))
		id, _ := d["messages"].(map[string]any)["a@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		if m, err := e.s.Message(ctx, id); err != nil || m.DomainID != any1.ID {
			t.Errorf("domain %+v %v", m, err)
		}
	})
}

// send/raw: parameter errors in order, From authorisation without a
// message, duplicates collapsed, the raw stored verbatim.
func TestSendRaw(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		raw := "From: Alice <alice@example.com>\r\nTo: bob@dest.test\r\nSubject: raw one\r\nMessage-ID: <abc@example.com>\r\n\r\nBody\r\n"
		data := base64.StdEncoding.EncodeToString([]byte(raw))
		wantParamError(t, e.postJSON("send/raw", map[string]any{}), "`rcpt_to` parameter is required but is missing")
		wantParamError(t, e.postJSON("send/raw", map[string]any{"rcpt_to": "a@dest.test", "mail_from": "a@example.com", "data": data}),
			"`rcpt_to` parameter is required but is missing")
		wantParamError(t, e.postJSON("send/raw", map[string]any{"rcpt_to": []string{"a@dest.test"}, "data": data}),
			"`mail_from` parameter is required but is missing")
		wantParamError(t, e.postJSON("send/raw", map[string]any{"rcpt_to": []string{"a@dest.test"}, "mail_from": "a@example.com"}),
			"`data` parameter is required but is missing")
		bad := base64.StdEncoding.EncodeToString([]byte("From: x@elsewhere.test\r\n\r\nhi"))
		a := e.postJSON("send/raw", map[string]any{"rcpt_to": []string{"a@dest.test"}, "mail_from": "a@example.com", "data": bad})
		wantError(t, a, "UnauthenticatedFromAddress", "")
		if string(a.Data) != `{"code":"UnauthenticatedFromAddress"}` {
			t.Errorf("data %s", a.Data)
		}
		d := success(t, e.postJSON("send/raw", map[string]any{"rcpt_to": []string{"bob@dest.test", "bob@dest.test", "carol@dest.test"},
			"mail_from": "bounces@example.com", "data": data}))
		if d["message_id"] != "abc@example.com" {
			t.Errorf("message_id %v", d["message_id"])
		}
		msgs := d["messages"].(map[string]any)
		if len(msgs) != 2 {
			t.Fatalf("messages %v", msgs)
		}
		id, _ := msgs["bob@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		m, err := e.s.Message(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := e.s.RawMessage(ctx, m.RawMessageID)
		if string(stored) != raw || m.MailFrom != "bounces@example.com" || m.Subject != "raw one" || !m.ReceivedWithSSL {
			t.Errorf("stored %+v\n%q", m, stored)
		}
		ms, _ := e.s.ServerMessages(ctx, e.fx.Server.ID, "", 10)
		if len(ms) != 2 {
			t.Errorf("%d messages stored, want 2", len(ms))
		}
		// The tag comes from the last X-Postal-Tag header, as Postal takes it.
		tagged := base64.StdEncoding.EncodeToString([]byte("From: alice@example.com\r\nX-Postal-Tag: first\r\nX-Postal-Tag: last\r\n\r\nx"))
		d = success(t, e.postJSON("send/raw", map[string]any{"rcpt_to": []string{"t@dest.test"}, "mail_from": "a@example.com", "data": tagged}))
		tid, _ := d["messages"].(map[string]any)["t@dest.test"].(map[string]any)["id"].(json.Number).Int64()
		if m, err := e.s.Message(ctx, tid); err != nil || m.Tag != "last" {
			t.Errorf("send/raw tag %q, %v", m.Tag, err)
		}
		// No recipients: success with nothing.
		a = e.postJSON("send/raw", map[string]any{"rcpt_to": []string{}, "mail_from": "a@example.com", "data": data})
		success(t, a)
		if string(a.Data) != `{"message_id":null,"messages":{}}` {
			t.Errorf("empty send/raw data %s", a.Data)
		}
	})
}

// messages/message with every expansion: Postal's key order and JSON types.
func TestMessageExpansions(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d := success(t, e.postJSON("send/message", map[string]any{"to": []string{"bob@dest.test"}, "from": "alice@example.com",
			"subject": "Hello", "plain_body": "Plain ünïcode", "html_body": "<b>HTML</b>",
			"attachments": []any{map[string]any{"name": "a.txt", "content_type": "text/plain", "data": base64.StdEncoding.EncodeToString([]byte("attached"))}}}))
		id, _ := d["messages"].(map[string]any)["bob@dest.test"].(map[string]any)["id"].(json.Number).Int64()

		wantParamError(t, e.postJSON("messages/message", map[string]any{}), "`id` parameter is required but is missing")
		wantParamError(t, e.postJSON("messages/message", map[string]any{"id": "5"}), "`id` parameter must be an integer")
		wantParamError(t, e.postJSON("messages/message", map[string]any{"id": 5.5}), "`id` parameter must be an integer")
		nf := e.postJSON("messages/message", map[string]any{"id": 999999})
		wantError(t, nf, "MessageNotFound", "No message found matching provided ID")
		if string(nf.Data) != `{"message":"No message found matching provided ID","id":999999,"code":"MessageNotFound"}` {
			t.Errorf("not found data %s", nf.Data)
		}
		// No expansions: id and token only.
		for _, exp := range []any{nil, false, "status", []any{}} {
			a := e.postJSON("messages/message", map[string]any{"id": id, "_expansions": exp})
			if got := keys(t, a.Data); got != "id,token" {
				t.Errorf("_expansions %v: keys %s", exp, got)
			}
		}
		a := e.postJSON("messages/message", map[string]any{"id": id, "_expansions": true})
		if got := keys(t, a.Data); got != "id,token,status,details,inspection,plain_body,html_body,attachments,headers,raw_message,activity_entries" {
			t.Errorf("keys %s", got)
		}
		m := success(t, a)
		st := m["status"].(map[string]any)
		if st["status"] != "Pending" || st["held"] != false || st["last_delivery_attempt"] != nil || st["hold_expiry"] != nil {
			t.Errorf("status %v", st)
		}
		det := m["details"].(map[string]any)
		if det["size"] == nil || fmt.Sprintf("%T", det["size"]) != "string" || det["bounce_for_id"] != json.Number("0") ||
			det["tag"] != nil || det["received_with_ssl"] != true || det["direction"] != "outgoing" || det["subject"] != "Hello" ||
			det["message_id"] != d["message_id"] || det["bounce"] != false || det["rcpt_to"] != "bob@dest.test" {
			t.Errorf("details %v", det)
		}
		if ts := string(det["timestamp"].(json.Number)); !strings.Contains(ts, ".") {
			t.Errorf("timestamp %s is not a float", ts)
		}
		ins := m["inspection"].(map[string]any)
		if ins["spam_score"] != json.Number("0.0") || ins["inspected"] != false || ins["threat_details"] != nil {
			t.Errorf("inspection %v", ins)
		}
		if m["plain_body"] != "Plain ünïcode" || m["html_body"] != "<b>HTML</b>" {
			t.Errorf("bodies %q %q", m["plain_body"], m["html_body"])
		}
		att := m["attachments"].([]any)
		if len(att) != 1 {
			t.Fatalf("attachments %v", att)
		}
		a0 := att[0].(map[string]any)
		if a0["filename"] != "a.txt" || a0["content_type"] != "text/plain" || a0["data"] != "YXR0YWNoZWQ=\n" ||
			a0["size"] != json.Number("8") || a0["hash"] != "20988a5ccb7a4e693b66e54bb26fb4920fb42b4a" {
			t.Errorf("attachment %v", a0)
		}
		hdr := m["headers"].(map[string]any)
		if v, _ := hdr["subject"].([]any); len(v) != 1 || v[0] != "Hello" {
			t.Errorf("headers %v", hdr)
		}
		if v, _ := hdr["received"].([]any); len(v) != 1 || !strings.HasPrefix(v[0].(string), "from api") {
			t.Errorf("received %v", hdr["received"])
		}
		rawB64 := m["raw_message"].(string)
		for _, line := range strings.Split(strings.TrimSuffix(rawB64, "\n"), "\n") {
			if len(line) > 60 {
				t.Fatalf("raw_message line of %d", len(line))
			}
		}
		rawB, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(rawB64, "\n", ""))
		msg, _ := e.s.Message(ctx, id)
		stored, _ := e.s.RawMessage(ctx, msg.RawMessageID)
		if !bytes.Equal(rawB, stored) {
			t.Errorf("raw_message differs from the stored message")
		}
		if string(mustJSON(t, m["activity_entries"])) != `{"clicks":[],"loads":[]}` {
			t.Errorf("activity %v", m["activity_entries"])
		}
		// A list of names, unknown ones ignored, in answer order.
		a = e.postJSON("messages/message", map[string]any{"id": id, "_expansions": []string{"details", "nope", "status"}})
		if got := keys(t, a.Data); got != "id,token,status,details" {
			t.Errorf("keys %s", got)
		}
	})
}

// An SMTP message without TLS has received_with_ssl null (never false);
// another server's message is not found.
func TestMessageTypesAndScope(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		acc, err := e.s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: s\r\n\r\nx"), Messages: []store.NewMessage{{
			ServerID: e.fx.Server.ID, Scope: store.ScopeIncoming, RcptTo: "in@example.com", MailFrom: "a@b.test", Queue: true, QueueDomain: "example.com"}}}})
		if err != nil {
			t.Fatal(err)
		}
		id := acc[0][0].MessageID
		a := e.postJSON("messages/message", map[string]any{"id": id, "_expansions": []string{"details"}})
		det := success(t, a)["details"].(map[string]any)
		if v, ok := det["received_with_ssl"]; !ok || v != nil || det["direction"] != "incoming" || det["message_id"] != nil {
			t.Errorf("details %v", det)
		}
		srv2, err := e.s.CreateServer(ctx, "acme", store.NewServer{Name: "Two", Permalink: "two"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.CreateCredential(ctx, srv2.ID, store.NewCredential{Type: store.CredentialAPI, Name: "k", Key: "SecondServerKey000000000"}); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.postJSON("messages/message", map[string]any{"id": id}, "X-Server-API-Key", "SecondServerKey000000000"), "MessageNotFound", "")
		wantError(t, e.postJSON("messages/deliveries", map[string]any{"id": id}, "X-Server-API-Key", "SecondServerKey000000000"), "MessageNotFound", "")
	})
}

// messages/deliveries: a list with postal-php's strict types.
func TestDeliveries(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		acc, err := e.s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: s\r\n\r\nx"), Messages: []store.NewMessage{{
			ServerID: e.fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "a@example.com", Queue: true, QueueDomain: "dest.test"}}}})
		if err != nil {
			t.Fatal(err)
		}
		id := acc[0][0].MessageID
		a := e.postJSON("messages/deliveries", map[string]any{"id": id})
		if a.Status != "success" || string(a.Data) != "[]" {
			t.Fatalf("no deliveries: %s", a.Raw)
		}
		if err := e.s.FailQueued(ctx, acc[0][0].QueuedID, "gave up"); err != nil {
			t.Fatal(err)
		}
		a = e.postJSON("messages/deliveries", map[string]any{"id": id})
		var list []map[string]any
		dec := json.NewDecoder(bytes.NewReader(a.Data))
		dec.UseNumber()
		if err := dec.Decode(&list); err != nil || len(list) != 1 {
			t.Fatalf("deliveries %s: %v", a.Data, err)
		}
		dl := list[0]
		if _, err := dl["id"].(json.Number).Int64(); err != nil || dl["status"] != "HardFail" || dl["details"] != "gave up" ||
			dl["sent_with_ssl"] != false || dl["output"] != nil || dl["log_id"] != nil || dl["time"] != nil {
			t.Errorf("delivery %v", dl)
		}
		if ts, ok := dl["timestamp"].(json.Number); !ok || !strings.Contains(string(ts), ".") {
			t.Errorf("timestamp %v", dl["timestamp"])
		}
		if got := keysList(t, a.Data); got != "id,status,details,output,sent_with_ssl,log_id,time,timestamp" {
			t.Errorf("keys %s", got)
		}
		wantParamError(t, e.postJSON("messages/deliveries", map[string]any{"id": nil}), "`id` parameter is required but is missing")
	})
}

// Idempotency-Key: a retry returns the first answer and stores nothing; the
// same key for another body is refused; a failed request frees its key.
func TestIdempotencyKey(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		body := map[string]any{"to": []string{"a@dest.test", "b@dest.test"}, "from": "alice@example.com", "plain_body": "x"}
		first := success(t, e.postJSON("send/message", body, "Idempotency-Key", "order-1"))
		again := e.postJSON("send/message", body, "Idempotency-Key", "order-1")
		if string(mustJSON(t, success(t, again))) != string(mustJSON(t, first)) {
			t.Errorf("replay %s, first %v", again.Data, first)
		}
		if ms, _ := e.s.ServerMessages(ctx, e.fx.Server.ID, "", 10); len(ms) != 2 {
			t.Errorf("%d messages, want 2", len(ms))
		}
		body["subject"] = "changed"
		wantError(t, e.postJSON("send/message", body, "Idempotency-Key", "order-1"), "IdempotencyKeyReused", "")
		// Another endpoint with the same key is another request.
		wantError(t, e.postJSON("send/raw", map[string]any{"rcpt_to": []string{}, "mail_from": "a", "data": "eA=="}, "Idempotency-Key", "order-1"),
			"IdempotencyKeyReused", "")
		// A validation error stores nothing and releases the key.
		bad := map[string]any{"to": []string{"a@dest.test"}, "from": "alice@example.com"}
		wantError(t, e.postJSON("send/message", bad, "Idempotency-Key", "order-2"), "NoContent", "")
		success(t, e.postJSON("send/message", body, "Idempotency-Key", "order-2"))
		wantParamError(t, e.postJSON("send/message", body, "Idempotency-Key", strings.Repeat("k", 300)), "")
	})
}

// The per-credential rate limit, counted in Redis, answers
// RateLimitExceeded with Retry-After; another key has its own count.
func TestRateLimit(t *testing.T) {
	eachWith(t, envOptions{tune: func(t testing.TB, o *api.Options) {
		rc, keys := redistest.New(t)
		w, err := ratelimit.New(ratelimit.Options{Client: rc, Keys: keys, Name: "api-requests", Max: 2, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		o.Limiter, o.RetryAfter = w, 30*time.Second
	}}, func(t *testing.T, e *env) {
		for range 2 {
			wantError(t, e.postJSON("messages/message", map[string]any{"id": 1}), "MessageNotFound", "")
		}
		a := e.postJSON("messages/message", map[string]any{"id": 1})
		wantError(t, a, "RateLimitExceeded", "")
		if a.Header.Get("Retry-After") != "30" {
			t.Errorf("Retry-After %q", a.Header.Get("Retry-After"))
		}
		if _, err := e.s.CreateCredential(context.Background(), e.fx.Server.ID, store.NewCredential{Type: store.CredentialAPI,
			Name: "other", Key: "AnotherApiKey00000000000"}); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.postJSON("messages/message", map[string]any{"id": 1}, "X-Server-API-Key", "AnotherApiKey00000000000"), "MessageNotFound", "")
	})
}

// With Redis gone the rate limit fails open: sends are accepted (SQL is
// the record), never refused because the limit could not be counted.
func TestRateLimitFailsOpenWhenRedisIsDown(t *testing.T) {
	eachWith(t, envOptions{tune: func(t testing.TB, o *api.Options) {
		srv := redistest.StartServer(t)
		rc, err := redisconn.New(redisconn.Options{URL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rc.Close() })
		w, err := ratelimit.New(ratelimit.Options{Client: rc, Keys: redisconn.NewKeys("api"), Name: "api-requests", Max: 1, Window: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		o.Limiter, o.RetryAfter = w, 30*time.Second
		srv.Kill()
	}}, func(t *testing.T, e *env) {
		body := map[string]any{"to": []string{"a@dest.test"}, "from": "alice@example.com", "plain_body": "x"}
		for range 3 { // past Max: nothing was counted
			success(t, e.postJSON("send/message", body))
		}
	})
}

// Request caps: body size and JSON depth give parameter-errors.
func TestRequestCaps(t *testing.T) {
	eachWith(t, envOptions{tune: func(_ testing.TB, o *api.Options) { o.MaxBodyBytes = 1024; o.MaxJSONDepth = 4 }}, func(t *testing.T, e *env) {
		big := map[string]any{"to": []string{"a@dest.test"}, "from": "alice@example.com", "plain_body": strings.Repeat("x", 2000)}
		wantParamError(t, e.postJSON("send/message", big), "The request body is larger than 1024 bytes")
		wantParamError(t, e.postForm("send/message", big), "The request body is larger than 1024 bytes")
		deep := map[string]any{"headers": map[string]any{"a": []any{[]any{[]any{1}}}}}
		wantParamError(t, e.postJSON("send/message", deep), "The request body nests JSON 5 levels deep (at most 4)")
	})
}

// Every request is counted by endpoint and answer.
func TestMetrics(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		success(t, e.postJSON("send/message", map[string]any{"to": []string{"a@dest.test"}, "from": "alice@example.com", "plain_body": "x"}))
		wantError(t, e.postJSON("send/message", map[string]any{}), "NoRecipients", "")
		wantParamError(t, e.postJSON("messages/message", map[string]any{}), "")
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "postal_api_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var ep, st string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "endpoint":
						ep = l.GetValue()
					case "status":
						st = l.GetValue()
					}
				}
				got[ep+" "+st] = m.GetCounter().GetValue()
			}
		}
		want := map[string]float64{"send/message success": 1, "send/message NoRecipients": 1, "messages/message parameter-error": 1}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists a JSON object's keys in order.
func keys(t *testing.T, b []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var out []string
	for dec.More() {
		tok, _ := dec.Token()
		out = append(out, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Join(out, ",")
}

// keysList lists the keys of the first object of a JSON array.
func keysList(t *testing.T, b []byte) string {
	t.Helper()
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil || len(list) == 0 {
		t.Fatalf("not a list: %s", b)
	}
	return keys(t, list[0])
}

// Concurrent retries with one Idempotency-Key store one request's messages:
// every answer is that success or IdempotencyKeyInProgress.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		body := map[string]any{"to": []string{"a@dest.test"}, "from": "alice@example.com", "plain_body": "x"}
		answers := make(chan answer, 8)
		for range 8 {
			go func() { answers <- e.postJSON("send/message", body, "Idempotency-Key", "same") }()
		}
		var first string
		for range 8 {
			a := <-answers
			if a.Status == "success" {
				if first == "" {
					first = string(a.Data)
				} else if string(a.Data) != first {
					t.Errorf("two different successes: %s and %s", first, a.Data)
				}
				continue
			}
			wantError(t, a, "IdempotencyKeyInProgress", "")
		}
		if first == "" {
			t.Error("no request succeeded")
		}
		if ms, _ := e.s.ServerMessages(context.Background(), e.fx.Server.ID, "", 10); len(ms) != 1 {
			t.Errorf("%d messages stored, want 1", len(ms))
		}
	})
}

// A database failure answers InternalError (HTTP 200, nothing stored).
func TestDatabaseFailure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if err := e.s.Close(); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.postJSON("send/message", map[string]any{"to": []string{"a@dest.test"}}), "InternalError", "")
	})
}

// The Received field names the client by reverse DNS (its address when it
// has no name), the address a trusted proxy forwarded, and nothing for a
// privacy-mode server.
func TestReceivedField(t *testing.T) {
	eachWith(t, envOptions{tune: func(_ testing.TB, o *api.Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}}, func(t *testing.T, e *env) {
		ctx := context.Background()
		body := map[string]any{"to": []string{"a@dest.test"}, "from": "alice@example.com", "plain_body": "x"}
		receivedOf := func(a answer) string {
			t.Helper()
			id, _ := success(t, a)["messages"].(map[string]any)["a@dest.test"].(map[string]any)["id"].(json.Number).Int64()
			m, err := e.s.Message(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := e.s.RawMessage(ctx, m.RawMessageID)
			line, _, _ := strings.Cut(string(raw), "\r\nDate:")
			return strings.Join(strings.Fields(line), " ")
		}
		if got := receivedOf(e.postJSON("send/message", body)); !strings.HasPrefix(got, "Received: from api (client.test [127.0.0.1]) by postal.test with HTTP; ") {
			t.Errorf("direct: %s", got)
		}
		if got := receivedOf(e.postJSON("send/message", body, "X-Forwarded-For", "203.0.113.9")); !strings.HasPrefix(got,
			"Received: from api (203.0.113.9 [203.0.113.9]) by postal.test with HTTP; ") {
			t.Errorf("forwarded: %s", got)
		}
		yes := true
		if _, err := e.s.UpdateServer(ctx, e.fx.Server.ID, store.ServerSettings{PrivacyMode: &yes}); err != nil {
			t.Fatal(err)
		}
		if got := receivedOf(e.postJSON("send/message", body)); !strings.HasPrefix(got, "Received: by postal.test with HTTP; ") {
			t.Errorf("privacy mode: %s", got)
		}
	})
}
