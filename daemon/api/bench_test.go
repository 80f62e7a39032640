package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/postalgo/postal/daemon/api"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// BenchmarkSendMessage posts send/message (one recipient, 2 KB body) to a
// running web-server over HTTP from parallel clients, on SQLite: each
// success is committed in SQL before its answer. scripts/bench/api.sh is
// the end-to-end measure against SMTP.
func BenchmarkSendMessage(b *testing.B) {
	s := storetest.SQLite(b)
	e := newEnv(b, s, envOptions{tune: func(_ testing.TB, o *api.Options) { o.CacheTTL = 0 }}) // the default cache, as in production
	body := []byte(`{"to": ["bob@dest.test"], "from": "alice@example.com", "subject": "bench", "plain_body": "` +
		strings.Repeat("The quick brown fox jumps over the lazy dog. ", 45) + `"}`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.SetParallelism(25) // 50 clients on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.url+"/api/v1/send/message", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Server-API-Key", e.key)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(buf.Bytes(), []byte(`"status":"success"`)) {
				b.Errorf("answer %s", buf.Bytes())
				return
			}
		}
	})
}
