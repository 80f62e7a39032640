package outbound

import (
	"bytes"
	"strings"
	"testing"
)

func TestStripHeader(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"absent", "A: 1\r\n\r\nX-Postal-MsgID: body\r\n", "A: 1\r\n\r\nX-Postal-MsgID: body\r\n"},
		{"folded and repeated", "x-postal-msgid: a\r\n b\r\nA: 1\r\nX-Postal-MsgID:c\r\n\r\nbody", "A: 1\r\n\r\nbody"},
		{"bare LF", "X-Postal-MsgID: a\nB: 2\n\nX-Postal-MsgID: keep\n", "B: 2\n\nX-Postal-MsgID: keep\n"},
		{"no body", "X-Postal-MsgID: a\r\nB: 2\r\n", "B: 2\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(stripHeader([]byte(c.in), msgIDHeader)); got != c.want {
				t.Errorf("stripHeader = %q, want %q", got, c.want)
			}
		})
	}
}

func TestHeaderValuesUnfolds(t *testing.T) {
	got := headerValues([]byte("From: A\r\n <a@x.test>\r\nfrom: b@y.test\r\n\r\nFrom: body@z.test\r\n"), "from")
	if len(got) != 2 || got[0] != "A <a@x.test>" || got[1] != "b@y.test" {
		t.Errorf("headerValues = %q", got)
	}
	if from := fromAddresses([]byte("From: A <a@x.test>, b@y.test\r\n\r\n")); strings.Join(from, ",") != "a@x.test,b@y.test" {
		t.Errorf("fromAddresses = %q", from)
	}
}

// FuzzStripHeader checks that removing a header field never touches the
// body, leaves no such field in the header block, and changes nothing when
// there is none.
func FuzzStripHeader(f *testing.F) {
	for _, s := range []string{"A: 1\r\n\r\nbody", "X-Postal-MsgID: a\r\n b\r\n\r\nx", "x-postal-msgid:\n\n", "\r\n", "nocolon\r\n\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out := stripHeader(msg, msgIDHeader)
		if !bytes.HasSuffix(out, msg[headerEnd(msg):]) {
			t.Fatalf("body changed: %q -> %q", msg, out)
		}
		fieldLines(out, func(s, e int, name string) {
			if name == "x-postal-msgid" {
				t.Fatalf("field left in %q", out)
			}
		})
		found := false
		fieldLines(msg, func(s, e int, name string) { found = found || name == "x-postal-msgid" })
		if !found && !bytes.Equal(out, msg) {
			t.Fatalf("changed without a field: %q -> %q", msg, out)
		}
	})
}
