package screen_test

import (
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/tui/screen"
)

var now = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		q       string
		want    store.MessageFilter
		wantErr string
	}{
		{"", store.MessageFilter{}, ""},
		{"held", store.MessageFilter{Held: true}, ""},
		{"status:softfail scope:OUTGOING", store.MessageFilter{Status: store.StatusSoftFail, Scope: store.ScopeOutgoing}, ""},
		{"from:a@b.example to:c@d.example tag:news server:7", store.MessageFilter{From: "a@b.example", To: "c@d.example", Tag: "news", ServerID: 7}, ""},
		{"invoice march subject:2025", store.MessageFilter{Subject: "invoice march 2025"}, ""},
		{"since:2h until:2025-03-14T09:00:00Z", store.MessageFilter{Since: now.Add(-2 * time.Hour), Until: time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)}, ""},
		{"since:3d", store.MessageFilter{Since: now.Add(-72 * time.Hour)}, ""},
		{"status:lost", store.MessageFilter{}, "status:lost: want one of"},
		{"server:x", store.MessageFilter{}, "server:x: want a server id"},
		{"colour:red", store.MessageFilter{}, `unknown filter "colour"`},
		{"to:", store.MessageFilter{}, "to: needs a value"},
		{"since:-5m", store.MessageFilter{}, "since:-5m: want a duration"},
		{strings.Repeat("x", screen.MaxQuery+1), store.MessageFilter{}, "more than 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			got, err := screen.ParseQuery(tt.q, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseQuery = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// Whatever is typed, the parser returns a filter the store accepts or an
// error, never panics, and never keeps more text than it was given.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"held status:Held", "to:a@b since:1h", "subject:%_\\", "server:99999999999999999999", "since:9999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := screen.ParseQuery(q, now)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted a filter the store rejects: %v", err)
		}
		if len(got.Subject)+len(got.From)+len(got.To)+len(got.Tag) > len(q) {
			t.Fatal("filter holds more text than the query")
		}
	})
}
