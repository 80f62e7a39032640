package daemon_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// A message sent through the HTTP API of the built postald (every role in
// one process) reaches an SMTP sink found by MX, DKIM-signed, in Postal's
// MIME layout: multipart/mixed around multipart/alternative, then the
// attachment; the envelope sender is the return path; messages/message and
// messages/deliveries then report it Sent.
func TestAPIMessageIsDeliveredSigned(t *testing.T) {
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"POSTAL_WEB_HOSTNAME=web.postal.test",
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
	}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	var dom struct {
		Records []struct{ Purpose, Name, Value string }
	}
	postalctlJSON(t, in, &dom, "domain", "add", "acme/mail", "example.com", "--verified")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "api", "app")
	txt := map[string]string{}
	for _, r := range dom.Records {
		if r.Purpose == "dkim" {
			txt[r.Name] = r.Value
		}
	}
	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })

	post := func(path string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/api/v1/%s", in.webPort, path), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Server-API-Key", cred.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v\n%s", path, err, p.stderr)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		var env struct {
			Status string
			Data   json.RawMessage
		}
		if err := json.Unmarshal(out, &env); err != nil || env.Status != "success" {
			t.Fatalf("%s: %d %s %v", path, resp.StatusCode, out, err)
		}
		var data map[string]any
		if err := json.Unmarshal(env.Data, &data); err != nil {
			var list []any
			if json.Unmarshal(env.Data, &list) == nil {
				return map[string]any{"list": list}
			}
			t.Fatalf("%s data %s", path, env.Data)
		}
		return data
	}
	sent := post("send/message", map[string]any{
		"to": []string{"Bob <bob@dest.test>"}, "from": "Alice <alice@example.com>", "subject": "API e2e",
		"plain_body": "Hello from the API", "html_body": "<p>Hello from the API</p>", "tag": "e2e",
		"attachments": []any{map[string]any{"name": "notes.txt", "content_type": "text/plain",
			"data": base64.StdEncoding.EncodeToString([]byte("attached notes"))}},
	})
	id := sent["messages"].(map[string]any)["bob@dest.test"].(map[string]any)["id"]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postald:\n%s", p.stderr)
			_, postalctl := binaries(t)
			cmd := exec.Command(postalctl, "--config", in.config, "--json", "message", "show", fmt.Sprint(id))
			cmd.Env = in.env("redis://127.0.0.1:6379/0")
			out, err := cmd.CombinedOutput()
			t.Logf("postalctl message show %v: %v\n%s", id, err, out)
		}
	})
	got := snk.wait(t, 1, 60*time.Second)
	if len(got[0].to) != 1 || got[0].to[0] != "bob@dest.test" || !strings.HasSuffix(got[0].from, "@rp.postal.test") {
		t.Fatalf("sink envelope = from %q to %v", got[0].from, got[0].to)
	}
	data := got[0].data
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := txt[strings.TrimSuffix(name, ".")]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no TXT at %s", name)
		},
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.com" {
		t.Fatalf("DKIM verification = %+v, %v\n%s", verifs, err, data)
	}
	if !regexp.MustCompile(`Received: from api \([a-zA-Z0-9.-]+ \[127\.0\.0\.1\]\)\s+by web\.postal\.test with HTTP;`).Match(data) {
		t.Errorf("no API Received field:\n%s", data)
	}
	msgID := sent["message_id"].(string)
	if !bytes.Contains(data, []byte("Message-ID: <"+msgID+">")) || !strings.HasSuffix(msgID, "@rp.postal.test") {
		t.Errorf("Message-ID %s not in:\n%s", msgID, data)
	}
	ent, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if layout := mimeLayout(t, ent); layout != "multipart/mixed[multipart/alternative[text/plain,text/html],text/plain;attachment]" {
		t.Errorf("MIME layout %s", layout)
	}

	waitFor(t, "status Sent", 30*time.Second, func() bool {
		m := post("messages/message", map[string]any{"id": id, "_expansions": []string{"status"}})
		return m["status"].(map[string]any)["status"] == "Sent"
	})
	ds := post("messages/deliveries", map[string]any{"id": id})["list"].([]any)
	if len(ds) != 1 || ds[0].(map[string]any)["status"] != "Sent" {
		t.Errorf("deliveries %v", ds)
	}
}

// mimeLayout renders a message's part tree: type[children], leaf
// attachments as type;attachment.
func mimeLayout(t *testing.T, e *message.Entity) string {
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
			parts = append(parts, mimeLayout(t, p))
		}
		return mt + "[" + strings.Join(parts, ",") + "]"
	}
	if disp, _, _ := e.Header.ContentDisposition(); disp != "" {
		return mt + ";" + disp
	}
	return mt
}
