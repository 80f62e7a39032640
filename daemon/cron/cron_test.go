package cron_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/cron"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func redisURL() string {
	if u := os.Getenv(redistest.URLEnv); u != "" {
		return u
	}
	return redistest.DefaultURL
}

// newRedis connects to the shared test Redis under a fresh prefix, deleted
// when the test ends.
func newRedis(t testing.TB) (redis.UniversalClient, redisconn.Keys, string) {
	t.Helper()
	c, err := redisconn.New(redisconn.Options{URL: redisURL()})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "crontest-" + redistest.RandomHex(6)
	keys := redisconn.NewKeys(prefix)
	t.Cleanup(func() {
		if err := redistest.DeleteAll(context.Background(), c, keys); err != nil {
			t.Errorf("cleanup redis: %v", err)
		}
		_ = c.Close()
	})
	return c, keys, prefix
}

// fixedLease is a Lease for tests that call RunTask directly.
type fixedLease struct{ owner string }

func (l fixedLease) Run(ctx context.Context, fn func(ctx context.Context, token int64) error) error {
	return fn(ctx, 1)
}

func (l fixedLease) Owner() string { return l.owner }

func noop(context.Context) error { return nil }

func TestNewRejectsBadTasks(t *testing.T) {
	b := status.NewBoard(nil, redisconn.NewKeys("unused"))
	for _, tc := range []struct {
		name  string
		tasks []cron.Task
		want  string
	}{
		{"name with a space", []cron.Task{{Name: "a b", Every: time.Second, Run: noop}}, "without spaces or colons"},
		{"name with a colon", []cron.Task{{Name: "a:b", Every: time.Second, Run: noop}}, "without spaces or colons"},
		{"duplicate", []cron.Task{{Name: "a", Every: time.Second, Run: noop}, {Name: "a", Every: time.Second, Run: noop}}, "registered twice"},
		{"no interval", []cron.Task{{Name: "a", Run: noop}}, "interval must be positive"},
		{"offset too large", []cron.Task{{Name: "a", Every: time.Second, Offset: time.Second, Run: noop}}, "outside"},
		{"no function", []cron.Task{{Name: "a", Every: time.Second}}, "no function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cron.New(cron.Options{Board: b, Lease: fixedLease{}, Tasks: tc.tasks})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestRunTaskRecordsEveryOutcome(t *testing.T) {
	c, keys, _ := newRedis(t)
	board := status.NewBoard(c, keys)
	for _, tc := range []struct {
		name      string
		run       func(context.Context) error
		wantOK    bool
		wantError string
	}{
		{"success", noop, true, ""},
		{"error", func(context.Context) error { return errors.New("database away") }, false, "database away"},
		{"panic is recovered", func(context.Context) error { panic("kaboom") }, false, "panicked: kaboom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := cron.Task{Name: strings.ReplaceAll(tc.name, " ", "_"), Every: time.Hour, Run: tc.run}
			cr, err := cron.New(cron.Options{Board: board, Lease: fixedLease{owner: "me:1"}, Tasks: []cron.Task{task}})
			if err != nil {
				t.Fatal(err)
			}
			err = cr.RunTask(context.Background(), task, 77)
			if (err == nil) != tc.wantOK {
				t.Fatalf("RunTask = %v, want ok=%v", err, tc.wantOK)
			}
			runs, err := board.CronRuns(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var last *status.CronRun
			for _, tr := range runs {
				if tr.Task == task.Name {
					last = &tr.Last
				}
			}
			if last == nil {
				t.Fatalf("no record for %s in %+v", task.Name, runs)
			}
			if last.OK != tc.wantOK || !strings.Contains(last.Error, tc.wantError) || last.Token != 77 || last.Owner != "me:1" ||
				last.Started.IsZero() {
				t.Fatalf("record = %+v; want ok=%v error~%q token 77 owner me:1", last, tc.wantOK, tc.wantError)
			}
		})
	}
}

func TestDefaultTasksRunAgainstTheStore(t *testing.T) {
	c, keys, _ := newRedis(t)
	board := status.NewBoard(c, keys)
	s := storetest.SQLite(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f := storetest.NewFixture(t, s, "example.com", "")
	acc, err := s.InsertSubmissions(context.Background(), []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{{
		ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@b.test", MailFrom: "c@example.com",
		Status: store.StatusHeld, Held: true, HoldExpiry: now.Add(-time.Hour)}}}})
	if err != nil {
		t.Fatal(err)
	}
	tasks := cron.DefaultTasks(s, config.Postal{QueuedMessageLockStaleDays: 1}, nil, func() time.Time { return now })
	want := []string{cron.TaskExpireHeldMessages, cron.TaskTidyQueuedMessages, cron.TaskPruneSuppressionLists, cron.TaskProcessMessageRetention}
	if len(tasks) != len(want) {
		t.Fatalf("%d default tasks, want %d", len(tasks), len(want))
	}
	cr, err := cron.New(cron.Options{Board: board, Lease: fixedLease{owner: "me:1"}, Tasks: tasks})
	if err != nil {
		t.Fatal(err)
	}
	for i, task := range tasks {
		if task.Name != want[i] {
			t.Errorf("task %d is %s, want %s", i, task.Name, want[i])
		}
		if err := cr.RunTask(context.Background(), task, 1); err != nil {
			t.Errorf("%s: %v", task.Name, err)
		}
	}
	m, err := s.Message(context.Background(), acc[0][0].MessageID)
	if err != nil || m.Status != store.StatusHoldCancelled {
		t.Fatalf("held message after the cron tasks = %+v, %v; want HoldCancelled", m, err)
	}
}
