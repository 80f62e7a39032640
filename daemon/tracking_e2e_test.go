package daemon_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/postalgo/postal/daemon/resolver/dnstest"
)

// A message sent through the API from a domain with a verified track
// domain reaches the sink with its links rewritten and the open pixel
// added, and its DKIM signature verifies; fetching the pixel and a link
// through the web port (with X-Postal-Track-Host: 1) records a load and a
// click, answers a PNG and a 307 to the stored URL, and stores both
// webhook requests; excluded hosts and +notrack links are untouched; an
// unknown link is 404.
func TestTrackingEndToEnd(t *testing.T) {
	snk, sinkPort := startSink(t)
	dns := dnstest.NewServer(t, dnstest.MX("dest.test.", 10, "mx.dest.test."), dnstest.A("mx.dest.test.", "127.0.0.1"))
	in := newInstall(t, true)
	in.extra = []string{
		"DNS_NAMESERVERS=" + dns.Addr(),
		fmt.Sprintf("SMTP_CLIENT_DESTINATION_PORT=%d", sinkPort),
		"DNS_RETURN_PATH_DOMAIN=rp.postal.test",
	}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	var dom struct {
		Records []struct{ Purpose, Name, Value string }
	}
	postalctlJSON(t, in, &dom, "domain", "add", "acme/mail", "example.com", "--verified")
	postalctlJSON(t, in, nil, "track-domain", "add", "acme/mail", "click.example.com", "--verified",
		"--exclude-click-domains", "static.example.org")
	postalctlJSON(t, in, nil, "webhook", "add", "acme/mail", "https://hooks.example.net/postal", "--events", "MessageLoaded,MessageLinkClicked")
	var cred struct{ Key string }
	postalctlJSON(t, in, &cred, "credential", "create", "acme/mail", "--type", "api", "app")
	txt := map[string]string{}
	for _, r := range dom.Records {
		if r.Purpose == "dkim" {
			txt[r.Name] = r.Value
		}
	}
	p := startPostald(t, in, "redis://127.0.0.1:6379/0", "--role", "all")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postald:\n%s", p.stderr)
		}
	})
	waitFor(t, "/ready 200", 30*time.Second, func() bool { return readyStatus(in.healthPort) == 200 })

	api := func(path string, body any) json.RawMessage {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/api/v1/%s", in.webPort, path), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Server-API-Key", cred.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
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
		return env.Data
	}
	html := `<html><body><p>Hi</p><a href="https://shop.example.com/item?id=7&amp;ref=mail">Buy</a>` +
		`<a href="https://static.example.org/logo">logo</a><a href="https+notrack://example.com/unsub">unsub</a></body></html>`
	sent := api("send/message", map[string]any{
		"to": []string{"bob@dest.test"}, "from": "alice@example.com", "subject": "tracked",
		"plain_body": "See https://shop.example.com/plain now", "html_body": html,
	})
	var sentData struct {
		Messages map[string]struct{ ID int64 }
	}
	if err := json.Unmarshal(sent, &sentData); err != nil {
		t.Fatal(err)
	}
	msgID := sentData.Messages["bob@dest.test"].ID

	data := snk.wait(t, 1, 60*time.Second)[0].data
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := txt[strings.TrimSuffix(name, ".")]; ok {
				return []string{v}, nil
			}
			return nil, fmt.Errorf("no TXT at %s", name)
		},
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("DKIM verification = %+v, %v\n%s", verifs, err, data)
	}
	parts := map[string]string{}
	ent, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_ = ent.Walk(func(_ []int, e *message.Entity, _ error) error {
		mt, _, _ := e.Header.ContentType()
		if strings.HasPrefix(mt, "text/") {
			b, _ := io.ReadAll(e.Body)
			parts[mt] = string(b)
		}
		return nil
	})
	gotHTML, gotText := parts["text/html"], parts["text/plain"]
	pixel := regexp.MustCompile(`<img src='https://click\.example\.com/img/([a-z0-9]+)/([A-Za-z0-9]+)' alt=''></p></body>`).FindStringSubmatch(gotHTML)
	if pixel == nil {
		t.Fatalf("no pixel before </body>:\n%s", gotHTML)
	}
	serverToken := pixel[1]
	links := regexp.MustCompile(`href='https://click\.example\.com/`+serverToken+`/([A-Za-z0-9]{16})'`).FindAllStringSubmatch(gotHTML, -1)
	if len(links) != 1 {
		t.Fatalf("rewritten links = %v in:\n%s", links, gotHTML)
	}
	if !strings.Contains(gotHTML, `href="https://static.example.org/logo"`) || !strings.Contains(gotHTML, `href="https://example.com/unsub"`) {
		t.Errorf("excluded or +notrack link changed:\n%s", gotHTML)
	}
	if !regexp.MustCompile(`^See https://click\.example\.com/` + serverToken + `/[A-Za-z0-9]{16} now`).MatchString(gotText) {
		t.Errorf("text part not rewritten: %q", gotText)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	track := func(path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", in.webPort, path), nil)
		req.Header.Set("X-Postal-Track-Host", "1")
		req.Header.Set("User-Agent", "e2e-agent/1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := track("/img/" + serverToken + "/" + pixel[2])
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(body, "\x89PNG") {
		t.Errorf("pixel: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, body = track("/" + serverToken + "/" + links[0][1])
	if resp.StatusCode != 307 || resp.Header.Get("Location") != "https://shop.example.com/item?id=7&ref=mail" {
		t.Errorf("click: %d Location %q %q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp, body = track("/" + serverToken + "/AAAAAAAAAAAAAAAA"); resp.StatusCode != 404 || body != "Link not found" {
		t.Errorf("unknown link: %d %q", resp.StatusCode, body)
	}
	if resp, body = track("/zzzzzz/" + links[0][1]); resp.StatusCode != 404 || body != "Invalid Server Token" {
		t.Errorf("unknown server: %d %q", resp.StatusCode, body)
	}

	var act struct {
		ActivityEntries struct {
			Loads []struct {
				IPAddress string `json:"ip_address"`
				UserAgent string `json:"user_agent"`
			} `json:"loads"`
			Clicks []struct{ URL string } `json:"clicks"`
		} `json:"activity_entries"`
	}
	if err := json.Unmarshal(api("messages/message", map[string]any{"id": msgID, "_expansions": []string{"activity_entries"}}), &act); err != nil {
		t.Fatal(err)
	}
	if len(act.ActivityEntries.Loads) != 1 || act.ActivityEntries.Loads[0].UserAgent != "e2e-agent/1" ||
		act.ActivityEntries.Loads[0].IPAddress != "127.0.0.1" || len(act.ActivityEntries.Clicks) != 1 ||
		act.ActivityEntries.Clicks[0].URL != "https://shop.example.com/item?id=7&ref=mail" {
		t.Errorf("activity entries = %+v", act.ActivityEntries)
	}

	db, err := sql.Open("sqlite", filepath.Join(in.dir, "postal.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT event, payload FROM webhook_requests ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var events []string
	for rows.Next() {
		var ev, payload string
		if err := rows.Scan(&ev, &payload); err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
		if !strings.Contains(payload, `"user_agent":"e2e-agent/1"`) {
			t.Errorf("%s payload %s", ev, payload)
		}
	}
	if strings.Join(events, ",") != "MessageLoaded,MessageLinkClicked" {
		t.Errorf("webhook requests = %v", events)
	}
}
