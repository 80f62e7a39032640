package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// params are a request's parameters: the JSON object of a JSON body, or of
// the `params` form/query field (what postal-ruby sends). Numbers keep
// their text (json.Number) so that integers are told from floats.
type params map[string]any

// paramError is a parameter-error answer.
type paramError struct{ message string }

func (e *paramError) Error() string { return e.message }

func paramErrorf(format string, a ...any) *paramError {
	return &paramError{fmt.Sprintf(format, a...)}
}

// readParams reads the parameters of r, as Postal's api_params does: a
// Content-Type starting with application/json (case-sensitive) means a JSON
// body merged over the query string; otherwise the `params` field of the
// form or query string holds JSON; otherwise there are none. The body is
// capped at maxBody bytes and JSON nesting at maxDepth.
func readParams(r *http.Request, maxBody int64, maxDepth int) (params, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var buf bytes.Buffer
		if n := r.ContentLength; n > 0 && n <= maxBody {
			buf.Grow(int(n) + 1)
		}
		if _, err := buf.ReadFrom(r.Body); err != nil {
			return nil, bodyError(err, maxBody)
		}
		body := buf.Bytes()
		p := params{}
		if len(bytes.TrimSpace(body)) > 0 {
			var err error
			if p, err = decodeObject(body, maxDepth, "the request body"); err != nil {
				return nil, err
			}
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err == nil {
			for k, v := range q {
				if _, ok := p[k]; !ok && len(v) > 0 {
					p[k] = v[len(v)-1]
				}
			}
		}
		return p, nil
	}
	raw, found, err := formParam(r, maxBody)
	if err != nil {
		return nil, err
	}
	if !found {
		return params{}, nil
	}
	return decodeObject([]byte(raw), maxDepth, "the `params` parameter")
}

// formParam finds the `params` field in a url-encoded or multipart body,
// or in the query string.
func formParam(r *http.Request, maxBody int64) (string, bool, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch ct {
	case "multipart/form-data":
		err = r.ParseMultipartForm(maxBody)
	default:
		err = r.ParseForm()
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", false, bodyError(err, maxBody)
		}
		return "", false, paramErrorf("The request body could not be read as a form: %v", err)
	}
	if v, ok := r.Form["params"]; ok && len(v) > 0 {
		return v[0], true, nil
	}
	if r.MultipartForm != nil {
		if v, ok := r.MultipartForm.Value["params"]; ok && len(v) > 0 {
			return v[0], true, nil
		}
	}
	return "", false, nil
}

// tooLarge is the answer to a body over the cap.
type tooLarge struct{ limit int64 }

func (e *tooLarge) Error() string { return fmt.Sprintf("request body larger than %d bytes", e.limit) }

func bodyError(err error, maxBody int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &tooLarge{maxBody}
	}
	return paramErrorf("The request body could not be read: %v", err)
}

// decodeObject parses a JSON object after checking, in one linear pass,
// that it nests at most maxDepth deep.
func decodeObject(b []byte, maxDepth int, what string) (params, error) {
	if d := jsonDepth(b); d > maxDepth {
		return nil, paramErrorf("%s nests JSON %d levels deep (at most %d)", upperFirst(what), d, maxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, paramErrorf("%s is not valid JSON: %v", upperFirst(what), err)
	}
	if dec.More() {
		return nil, paramErrorf("%s has data after its JSON object", upperFirst(what))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, paramErrorf("%s must be a JSON object", upperFirst(what))
	}
	if h, ok := obj["headers"].(map[string]any); ok && len(h) > 1 {
		obj[headersOrderKey] = headersOrder(b)
	}
	return params(obj), nil
}

// headersOrderKey holds, in params, the order of the `headers` object's
// names as sent (a Go map forgets it; Postal keeps it). A client cannot
// forge it: JSON values never decode to a []string.
const headersOrderKey = "\x00headers-order"

// headersOrder returns the names of the top-level "headers" object of a
// valid JSON object b, in order.
func headersOrder(b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		if key, _ := t.(string); key != "headers" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return nil
		}
		var names []string
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return names
			}
			name, _ := t.(string)
			names = append(names, name)
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return names
			}
		}
		return names // the last "headers" key wins in the map; a repeat is rare
	}
	return nil
}

// rawHeadersOrder is the order of the custom header names as sent.
func (p params) rawHeadersOrder() []string {
	o, _ := p[headersOrderKey].([]string)
	return o
}

// orderedKeys lists obj's keys in the given order, then any others sorted.
func orderedKeys(obj map[string]any, order []string) []string {
	out := make([]string, 0, len(obj))
	seen := make(map[string]bool, len(obj))
	for _, k := range order {
		if _, ok := obj[k]; ok && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	var rest []string
	for k := range obj {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// jsonDepth returns the deepest nesting of arrays and objects in b,
// skipping strings; it does not validate.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > deepest {
				deepest = depth
			}
		case ']', '}':
			depth--
		}
	}
	return deepest
}

// present reports whether name was given with a value other than null.
func (p params) present(name string) bool {
	v, ok := p[name]
	return ok && v != nil
}

// blank is Ruby's blank?: absent, null, false, a string of whitespace, an
// empty array or object.
func blank(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case string:
		return strings.TrimSpace(x) == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// truthy is Ruby truthiness: everything but absent, null and false.
func (p params) truthy(name string) bool {
	v := p[name]
	if b, ok := v.(bool); ok {
		return b
	}
	return v != nil
}

// scalarText is the text of a string, number or boolean (Ruby's to_s),
// and false for arrays and objects.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// str returns a string parameter ("" when absent or null); numbers and
// booleans are taken as their text, arrays and objects are refused. Text
// over limit bytes is refused.
func (p params) str(name string, limit int) (string, error) {
	s, ok := scalarText(p[name])
	if !ok {
		return "", paramErrorf("`%s` parameter must be a string", name)
	}
	if len(s) > limit {
		return "", paramErrorf("`%s` parameter is longer than %d bytes", name, limit)
	}
	return s, nil
}

var listSplit = regexp.MustCompile(`,\s*`)

// list returns an address list: an array of strings, or a string split on
// commas. Blank entries are left out. At most limit entries are read
// (callers check the count against Postal's maximum first).
func (p params) list(name string, limit int) ([]string, error) {
	var out []string
	switch v := p[name].(type) {
	case nil:
		return nil, nil
	case []any:
		if len(v) > limit {
			return nil, paramErrorf("`%s` parameter has more than %d entries", name, limit)
		}
		for _, e := range v {
			s, ok := scalarText(e)
			if !ok {
				return nil, paramErrorf("`%s` parameter must be an array of strings", name)
			}
			out = append(out, s)
		}
	default:
		s, ok := scalarText(v)
		if !ok {
			return nil, paramErrorf("`%s` parameter must be an array of strings or a string", name)
		}
		if len(s) > limit*maxAddressLength {
			return nil, paramErrorf("`%s` parameter is too long", name)
		}
		out = listSplit.Split(s, -1)
	}
	kept := out[:0]
	for _, s := range out {
		if s = strings.TrimSpace(s); s != "" {
			kept = append(kept, s)
		}
	}
	return kept, nil
}

// decodeBase64 decodes leniently, as Ruby's Base64.decode64 does:
// characters outside the alphabet are skipped, padding is optional, and
// trailing bits that make no whole byte are dropped.
func decodeBase64(s string) []byte {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		} else if c == '=' {
			break
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}
