package api

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// The request parser never panics, caps nesting, and what it accepts is a
// JSON object.
func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(`{"to":["a@b"],"headers":{"X-A":"1","X-B":2}}`))
	f.Add([]byte(`{"a":"\"[[[[["}`))
	f.Add([]byte(`[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeObject(b, 8, "the body")
		if err != nil {
			return
		}
		if jsonDepth(b) > 8 {
			t.Fatalf("depth %d accepted", jsonDepth(b))
		}
		if p == nil {
			t.Fatal("nil params without an error")
		}
		_, _ = readHeaders(p)
		_, _ = readAttachments(p)
	})
}

// Lenient Base64 decodes what strict Base64 decodes, identically.
func FuzzDecodeBase64(f *testing.F) {
	f.Add([]byte("hello"))
	f.Add([]byte{0, 255, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		enc := base64.StdEncoding.EncodeToString(data)
		if got := decodeBase64(enc); !bytes.Equal(got, data) {
			t.Fatalf("round trip %x -> %q -> %x", data, enc, got)
		}
		if got := decodeBase64(rubyBase64(data)); !bytes.Equal(got, data) {
			t.Fatalf("wrapped round trip %x", data)
		}
		_ = decodeBase64(string(data))
	})
}

// Reading a stored message for the expansions never panics, whatever it holds.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		pm := parseMessage(raw)
		if !bytes.Equal(pm.raw, raw) {
			t.Fatal("raw changed")
		}
	})
}

// The envelope writer's fast path writes exactly what encoding/json does.
func FuzzObjectJSON(f *testing.F) {
	f.Add("key", "value <&>", int64(-5), true)
	f.Add("\u2028", "\xff\"\\\n", int64(0), false)
	f.Fuzz(func(t *testing.T, k, s string, n int64, b bool) {
		o := object{{k, s}, {"n", n}, {"b", b}, {"nil", nil}, {"sub", object{{k, s}}}}
		got, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var slow bytes.Buffer
		slow.WriteByte('{')
		for i, fl := range o {
			if i > 0 {
				slow.WriteByte(',')
			}
			kb, _ := marshal(fl.k)
			slow.Write(kb)
			slow.WriteByte(':')
			if sub, ok := fl.v.(object); ok {
				inner, _ := marshal(sub[0].k)
				v, _ := marshal(sub[0].v)
				slow.WriteString("{" + string(inner) + ":" + string(v) + "}")
				continue
			}
			v, _ := marshal(fl.v)
			slow.Write(v)
		}
		slow.WriteByte('}')
		if !bytes.Equal(got, slow.Bytes()) {
			t.Fatalf("fast %s\nslow %s", got, slow.Bytes())
		}
	})
}
