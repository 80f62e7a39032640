package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantCode int
		wantEnh  string
		wantText string
		wantErr  error // matched with errors.Is; nil for success
	}{
		{"single line", "250 OK\r\n", 250, "", "OK", nil},
		{"enhanced code is split off", "550 5.1.1 No such user\r\n", 550, "5.1.1", "No such user", nil},
		{"multi-line joins with LF and strips each code", "250-mx.test\r\n250-2.0.0 PIPELINING\r\n250 2.0.0 SIZE 10\r\n", 250, "", "mx.test\nPIPELINING\nSIZE 10", nil},
		{"enhanced code taken from the first line", "451-4.3.0 try\r\n451 4.7.1 later\r\n", 451, "4.3.0", "try\nlater", nil},
		{"bare LF line ending", "220 hi\n", 220, "", "hi", nil},
		{"code alone", "354\r\n", 354, "", "", nil},
		{"enhanced code alone", "250 2.1.0\r\n", 250, "2.1.0", "", nil},
		{"class mismatch is text", "250 5.1.1 odd\r\n", 250, "", "5.1.1 odd", nil},
		{"four-digit subject is text", "550 5.1234.1 x\r\n", 550, "", "5.1234.1 x", nil},
		{"code glued to text is text", "550 5.1.1x\r\n", 550, "", "5.1.1x", nil},
		{"short line", "25\r\n", 0, "", "", errMalformedReply},
		{"letter in code", "2x0 no\r\n", 0, "", "", errMalformedReply},
		{"bad separator", "250_no\r\n", 0, "", "", errMalformedReply},
		{"1xx is not an SMTP code", "150 no\r\n", 0, "", "", errMalformedReply},
		{"code changes mid-reply", "250-a\r\n251 b\r\n", 0, "", "", errMalformedReply},
		{"line longer than the buffer", "250 " + strings.Repeat("x", 5000) + "\r\n", 0, "", "", errMalformedReply},
		{"too many lines", strings.Repeat("250-x\r\n", maxReplyLines+1), 0, "", "", errMalformedReply},
		{"clean EOF", "", 0, "", "", io.EOF},
		{"EOF inside a line", "250 OK", 0, "", "", io.ErrUnexpectedEOF},
		{"EOF between lines", "250-a\r\n", 0, "", "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			err := readReply(bufio.NewReaderSize(strings.NewReader(tt.in), readBufferSize), &r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if r.code != tt.wantCode || string(r.enh) != tt.wantEnh || string(r.text) != tt.wantText {
				t.Errorf("reply = %d %q %q, want %d %q %q", r.code, r.enh, r.text, tt.wantCode, tt.wantEnh, tt.wantText)
			}
		})
	}
}

func TestReadReplyReusesBuffersAcrossReplies(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("550 5.1.1 first reply\r\n250 ok\r\n"))
	var r reply
	if err := readReply(br, &r); err != nil {
		t.Fatal(err)
	}
	if err := readReply(br, &r); err != nil {
		t.Fatal(err)
	}
	if r.code != 250 || len(r.enh) != 0 || string(r.text) != "ok" {
		t.Errorf("second reply = %d %q %q: state leaked from the first", r.code, r.enh, r.text)
	}
}

func TestParseExtensions(t *testing.T) {
	tests := []struct {
		name string
		text string
		want extensions
	}{
		{"go-smtp style", "mx.test\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nSTARTTLS\nSIZE 1000", extensions{pipelining: true, eightBit: true, startTLS: true, size: 1000, sizeKeyword: true}},
		{"lower case and SMTPUTF8", "mx\npipelining\nsmtputf8", extensions{pipelining: true, smtpUTF8: true}},
		{"SIZE without a limit", "mx\nSIZE", extensions{sizeKeyword: true}},
		{"SIZE 0 means no limit", "mx\nSIZE 0", extensions{sizeKeyword: true}},
		{"garbage SIZE is ignored", "mx\nSIZE lots", extensions{sizeKeyword: true}},
		{"greeting line is not a keyword", "PIPELINING", extensions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseExtensions([]byte(tt.text)); got != tt.want {
				t.Errorf("parseExtensions = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// formatReply writes r back in wire form, the enhanced code on every line.
func formatReply(r *reply) []byte {
	var b bytes.Buffer
	lines := strings.Split(string(r.text), "\n")
	for i, l := range lines {
		b.WriteString(strconv.Itoa(r.code))
		if i == len(lines)-1 {
			b.WriteByte(' ')
		} else {
			b.WriteByte('-')
		}
		if len(r.enh) > 0 {
			b.Write(r.enh)
			b.WriteByte(' ')
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// FuzzReply checks that any input either fails cleanly or parses to a reply
// that survives formatting and parsing again unchanged.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "550 5.1.1 No such user\r\n", "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
		"220 hi\n", "354\r\n", "451-4.3.0 a\r\n451 b\r\n", "250 2.0.0\r\n", "", "25", "250-x\r\n251 y\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r reply
		if err := readReply(bufio.NewReaderSize(bytes.NewReader(in), readBufferSize), &r); err != nil {
			return
		}
		if r.code < 200 || r.code > 599 {
			t.Fatalf("code %d out of range", r.code)
		}
		if len(r.enh) > 0 {
			if _, rest, ok := splitEnhanced(r.code, r.enh); !ok || len(rest) != 0 {
				t.Fatalf("enhanced code %q is not one", r.enh)
			}
		}
		wire := formatReply(&r)
		var again reply
		if err := readReply(bufio.NewReaderSize(bytes.NewReader(wire), len(wire)+16), &again); err != nil {
			t.Fatalf("re-parsing %q: %v", wire, err)
		}
		if again.code != r.code || !bytes.Equal(again.enh, r.enh) || !bytes.Equal(again.text, r.text) {
			t.Fatalf("round trip changed %d %q %q into %d %q %q", r.code, r.enh, r.text, again.code, again.enh, again.text)
		}
	})
}

func TestReplyMessageCutsLongTextOnACharacter(t *testing.T) {
	clef := "\U0001d11e" // 4 bytes
	tests := []struct {
		name string
		text string
		want string
	}{
		{"4-byte character straddling the cut", strings.Repeat("a", MaxReplyText-2) + clef + "tail", strings.Repeat("a", MaxReplyText-2)},
		{"2-byte character straddling the cut", strings.Repeat("a", MaxReplyText-1) + "é", strings.Repeat("a", MaxReplyText-1)},
		{"Latin-1 at the cut", strings.Repeat("a", MaxReplyText-1) + "\xe9\xe9", strings.Repeat("a", MaxReplyText-1)},
		{"multi-line, longer than a reply line", strings.Repeat("x\n", MaxReplyText), strings.Repeat("x\n", MaxReplyText/2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := reply{text: []byte(tt.text)}
			if got := r.message(); got != tt.want {
				t.Errorf("message() = %q... (%d bytes), want %d bytes", got[max(0, len(got)-8):], len(got), len(tt.want))
			}
		})
	}
}
