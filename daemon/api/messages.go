package api

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode bodies in legacy charsets to UTF-8

	"github.com/postalgo/postal/daemon/store"
)

// messageID reads the `id` parameter: required, and a JSON integer (Postal
// answers HTTP 500 for anything else; we answer a parameter-error).
func (rq *request) messageID() (int64, any, error) {
	v := rq.p["id"]
	if blank(v) {
		return 0, nil, paramErr("`id` parameter is required but is missing")
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, nil, paramErr("`id` parameter must be an integer")
	}
	id, err := n.Int64()
	if err != nil {
		return 0, nil, paramErr("`id` parameter must be an integer")
	}
	return id, v, nil
}

// find loads the requested message of the credential's server.
func (rq *request) find() (*store.Message, *store.Inspection, error) {
	id, asSent, err := rq.messageID()
	if err != nil {
		return nil, nil, err
	}
	m, in, err := rq.h.o.Store.ServerMessage(rq.r.Context(), rq.auth.Server.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, sendErr("MessageNotFound", "No message found matching provided ID").with(field{"id", asSent})
	}
	if err != nil {
		return nil, nil, err
	}
	return m, in, nil
}

// expansions lists every expansion in answer order.
var expansions = []string{"status", "details", "inspection", "plain_body", "html_body", "attachments", "headers",
	"raw_message", "activity_entries"}

// wanted reads `_expansions`: true means all, an array names some, anything
// else none; unknown names are ignored.
func (rq *request) wanted() map[string]bool {
	out := map[string]bool{}
	switch v := rq.p["_expansions"].(type) {
	case bool:
		if v {
			for _, e := range expansions {
				out[e] = true
			}
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out[s] = true
			}
		}
	}
	return out
}

// message is /api/v1/messages/message.
func (rq *request) message() (any, error) {
	m, in, err := rq.find()
	if err != nil {
		return nil, err
	}
	want := rq.wanted()
	data := object{{"id", m.ID}, {"token", m.Token}}
	var parsed *parsedMessage
	needRaw := want["plain_body"] || want["html_body"] || want["attachments"] || want["headers"] || want["raw_message"]
	if needRaw {
		raw, err := rq.raw(m)
		if err != nil {
			return nil, err
		}
		parsed = parseMessage(raw)
	}
	for _, e := range expansions {
		if !want[e] {
			continue
		}
		switch e {
		case "status":
			data = append(data, field{e, object{{"status", m.Status}, {"last_delivery_attempt", timeOrNull(m.LastDeliveryAttempt)},
				{"held", m.Held}, {"hold_expiry", timeOrNull(m.HoldExpiry)}}})
		case "details":
			data = append(data, field{e, details(m)})
		case "inspection":
			data = append(data, field{e, object{{"inspected", in.Inspected}, {"spam", in.Spam}, {"spam_score", float(in.SpamScore)},
				{"threat", in.Threat}, {"threat_details", stringOrNull(in.ThreatDetails)}}})
		case "plain_body":
			data = append(data, field{e, parsed.plain})
		case "html_body":
			data = append(data, field{e, parsed.html})
		case "attachments":
			list := make([]object, 0, len(parsed.attachments))
			for _, a := range parsed.attachments {
				sum := sha1.Sum(a.data)
				list = append(list, object{{"filename", a.filename}, {"content_type", a.contentType},
					{"data", rubyBase64(a.data)}, {"size", len(a.data)}, {"hash", hex.EncodeToString(sum[:])}})
			}
			data = append(data, field{e, list})
		case "headers":
			data = append(data, field{e, parsed.headers})
		case "raw_message":
			data = append(data, field{e, rubyBase64(parsed.raw)})
		case "activity_entries":
			tr, err := rq.h.o.Store.TrackingOf(rq.r.Context(), m.ID)
			if err != nil {
				return nil, err
			}
			data = append(data, field{e, activity(tr)})
		}
	}
	return data, nil
}

// activity is Postal's activity_entries: loads and clicks, oldest first,
// timestamps in ISO 8601 UTC with milliseconds.
func activity(tr *store.MessageTracking) object {
	iso := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	loads := make([]object, 0, len(tr.Loads))
	for i := len(tr.Loads) - 1; i >= 0; i-- {
		l := tr.Loads[i]
		loads = append(loads, object{{"ip_address", l.IP}, {"user_agent", l.UserAgent}, {"timestamp", iso(l.Timestamp)}})
	}
	clicks := make([]object, 0, len(tr.Clicks))
	for i := len(tr.Clicks) - 1; i >= 0; i-- {
		c := tr.Clicks[i]
		clicks = append(clicks, object{{"url", c.URL}, {"ip_address", c.IP}, {"user_agent", c.UserAgent}, {"timestamp", iso(c.Timestamp)}})
	}
	return object{{"loads", loads}, {"clicks", clicks}}
}

// raw returns the stored message, or an empty one ("\r\n\r\n", as Postal
// answers) once retention removed it.
func (rq *request) raw(m *store.Message) ([]byte, error) {
	if m.RawMessageID == 0 {
		return []byte("\r\n\r\n"), nil
	}
	raw, err := rq.h.o.Store.RawMessage(rq.r.Context(), m.RawMessageID)
	if errors.Is(err, store.ErrNotFound) {
		return []byte("\r\n\r\n"), nil
	}
	return raw, err
}

func details(m *store.Message) object {
	var ssl any // Postal: true for API/HTTP and STARTTLS, otherwise null (never false)
	if m.ReceivedWithSSL {
		ssl = true
	}
	return object{
		{"rcpt_to", m.RcptTo}, {"mail_from", m.MailFrom}, {"subject", stringOrNull(truncateRunes(m.Subject, 200))},
		{"message_id", stringOrNull(m.MessageID)}, {"timestamp", epoch(m.Timestamp)}, {"direction", m.Scope},
		{"size", itoa(m.Size)}, {"bounce", m.Bounce}, {"bounce_for_id", m.BounceForID}, {"tag", stringOrNull(m.Tag)},
		{"received_with_ssl", ssl},
	}
}

// deliveries is /api/v1/messages/deliveries: a list, oldest first.
func (rq *request) deliveries() (any, error) {
	m, _, err := rq.find()
	if err != nil {
		return nil, err
	}
	ds, err := rq.h.o.Store.Deliveries(rq.r.Context(), m.ID)
	if err != nil {
		return nil, err
	}
	out := make([]object, 0, len(ds))
	for _, d := range ds {
		var tm any
		if d.Time > 0 {
			tm = float(d.Time)
		}
		out = append(out, object{{"id", d.ID}, {"status", d.Status}, {"details", d.Details},
			{"output", stringOrNull(strings.TrimSpace(d.Output))}, {"sent_with_ssl", d.SentWithSSL},
			{"log_id", stringOrNull(d.LogID)}, {"time", tm}, {"timestamp", epoch(d.Timestamp)}})
	}
	return out, nil
}

func stringOrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return epoch(t)
}

// epoch is a time as float seconds with microseconds, as Postal stores it.
func epoch(t time.Time) float { return float(float64(t.UnixMicro()) / 1e6) }

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// rubyBase64 is Ruby's Base64.encode64: a newline after every 60
// characters and at the end.
func rubyBase64(b []byte) string {
	enc := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	out.Grow(len(enc) + len(enc)/60 + 1)
	for len(enc) > 60 {
		out.WriteString(enc[:60])
		out.WriteByte('\n')
		enc = enc[60:]
	}
	out.WriteString(enc)
	out.WriteByte('\n')
	return out.String()
}

// parsedMessage is what the body expansions read from a stored message.
type parsedMessage struct {
	raw         []byte
	plain, html any // string or nil
	attachments []attachment
	headers     object // lower-case name -> decoded values, in first-seen order
}

type attachment struct {
	filename, contentType string
	data                  []byte
}

// Limits of the MIME walk (a stored message came from outside).
const (
	maxParts     = 1000
	maxPartDepth = 20
)

// parseMessage reads the header fields, text bodies and attachments of
// raw. It never fails: what cannot be read is left out.
func parseMessage(raw []byte) *parsedMessage {
	pm := &parsedMessage{raw: raw, headers: object{}}
	e, _ := message.Read(bytes.NewReader(raw)) // an unknown charset still gives an entity
	if e == nil {
		return pm
	}
	index := map[string]int{}
	fields := e.Header.Fields()
	for fields.Next() {
		name := strings.ToLower(fields.Key())
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		v = cleanText(v, 1<<20)
		i, ok := index[name]
		if !ok {
			i = len(pm.headers)
			index[name] = i
			pm.headers = append(pm.headers, field{name, []string{}})
		}
		pm.headers[i].v = append(pm.headers[i].v.([]string), v)
	}
	parts := 0
	var walk func(e *message.Entity, depth int)
	walk = func(e *message.Entity, depth int) {
		if parts++; parts > maxParts || depth > maxPartDepth {
			return
		}
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if p == nil || err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
					return
				}
				walk(p, depth+1)
			}
		}
		mt, ctParams, _ := e.Header.ContentType()
		disp, dParams, _ := e.Header.ContentDisposition()
		filename := dParams["filename"]
		if filename == "" {
			filename = ctParams["name"]
		}
		body, _ := io.ReadAll(e.Body)
		isText := mt == "" || mt == "text/plain" || mt == "text/html"
		if strings.EqualFold(disp, "attachment") || filename != "" || !isText {
			if filename == "" {
				filename = "attachment"
			}
			if dec, err := new(mime.WordDecoder).DecodeHeader(filename); err == nil {
				filename = dec
			}
			if mt == "" {
				mt = "application/octet-stream"
			}
			pm.attachments = append(pm.attachments, attachment{cleanText(filename, 1000), mt, body})
			return
		}
		if mt == "text/html" {
			if pm.html == nil {
				pm.html = cleanText(string(body), len(body)+len(body)/2+16)
			}
		} else if pm.plain == nil {
			pm.plain = cleanText(string(body), len(body)+len(body)/2+16)
		}
	}
	walk(e, 0)
	return pm
}
