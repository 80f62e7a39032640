package tracking

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// newsletter is a 30 KB multipart/alternative message with 40 links in
// each part, quoted-printable HTML: a typical tracked campaign.
func newsletter() []byte {
	var text, html strings.Builder
	for i := range 40 {
		fmt.Fprintf(&text, "Article %d: a short summary of the story. Read more https://news.example.com/a/%d?utm_source=mail&utm_medium=email\r\n\r\n", i, i)
		fmt.Fprintf(&html, "<tr><td style=3D\"padding:8px;font-family:Arial\"><h2>Article %d</h2><p>A short summary of the=\r\n story, with some more words to make it the size of a real one.</p>"+
			"<a href=3D\"https://news.example.com/a/%d?utm_source=3Dmail&amp;utm_medium=3Demail\">Read more</a></td></tr>\r\n", i, i)
	}
	return []byte("From: news@example.com\r\nTo: reader@example.net\r\nSubject: Weekly\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		text.String() + "--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"<html><body><table>" + html.String() + "</table></body></html>\r\n--alt--\r\n")
}

// BenchmarkRewrite measures one message's full tracking cost: collecting
// its URLs, then rewriting with their tokens (the store round trips that
// come between are not included).
func BenchmarkRewrite(b *testing.B) {
	small, err := os.ReadFile("testdata/alternative.eml")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"golden-1KB", small}, {"newsletter-30KB", newsletter()}, {"adversarial-1MB", []byte("Content-Type: text/html\r\n\r\n" + strings.Repeat("href='http://a/", 1<<16))}} {
		b.Run(c.name, func(b *testing.B) {
			o := testOptions()
			b.SetBytes(int64(len(c.msg)))
			b.ReportAllocs()
			for b.Loop() {
				urls := URLs(c.msg, o)
				Rewrite(c.msg, o, tokensFor(urls))
			}
		})
	}
}
