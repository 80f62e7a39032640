package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestStripName(t *testing.T) {
	for in, want := range map[string]string{
		"Alice <alice@example.com>":         "alice@example.com",
		"alice@example.com":                 "alice@example.com",
		"  alice@example.com (Alice)  ":     "alice@example.com",
		`"Smith, John" <j@example.com> xyz`: "j@example.com",
		"<>":                                "",
	} {
		if got := stripName(in); got != want {
			t.Errorf("stripName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Ruby truthiness and blankness, as Postal reads bounce and the bodies.
func TestTruthyAndBlank(t *testing.T) {
	p := params{"zero": json.Number("0"), "false": false, "str": "false", "null": nil, "empty": "", "space": " \t"}
	for name, want := range map[string]bool{"zero": true, "false": false, "str": true, "null": false, "absent": false, "empty": true} {
		if got := p.truthy(name); got != want {
			t.Errorf("truthy(%s) = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{"zero": false, "false": true, "str": false, "null": true, "empty": true, "space": true} {
		if got := blank(p[name]); got != want {
			t.Errorf("blank(%s) = %v, want %v", name, got, want)
		}
	}
}

// X-Forwarded-For counts only when the peer is a trusted proxy, and then
// names the last address that is not itself trusted.
func TestClientIP(t *testing.T) {
	h := &Handler{o: Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, c := range []struct{ remote, xff, want string }{
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1"},
		{"10.0.0.2:5000", "203.0.113.9", "203.0.113.9"},
		{"10.0.0.2:5000", "198.51.100.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"},
		{"10.0.0.2:5000", "", "10.0.0.2"},
		{"10.0.0.2:5000", "garbage", "10.0.0.2"},
		{"[::ffff:192.0.2.1]:5000", "", "192.0.2.1"},
	} {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := h.clientIP(r).String(); got != c.want {
			t.Errorf("remote %s XFF %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

func TestJSONDepth(t *testing.T) {
	for in, want := range map[string]int{`{}`: 1, `{"a":[{"b":"[[["}]}`: 3, `"\"{"`: 0, `[[],[[]]]`: 3} {
		if got := jsonDepth([]byte(in)); got != want {
			t.Errorf("jsonDepth(%s) = %d, want %d", in, got, want)
		}
	}
}

// BenchmarkDecodeObject is the per-request cost of reading a send/message
// body with a 2 KB plain_body, as @atech/postal sends it.
func BenchmarkDecodeObject(b *testing.B) {
	body, _ := json.Marshal(map[string]any{"to": []string{"bob@dest.test"}, "cc": []string{}, "bcc": []string{},
		"headers": map[string]any{}, "attachments": []any{}, "from": "alice@example.com", "subject": "bench",
		"plain_body": strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 45)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeObject(body, 32, "the body"); err != nil {
			b.Fatal(err)
		}
	}
}
