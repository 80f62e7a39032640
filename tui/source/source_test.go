package source_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/tui/source"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline, not a fixed wait
	}
}

// The live source reads a real store and Redis: heartbeats, the lease held
// by a running term, cron records, SQL counts, stream stats and dead letters.
func TestLiveReadsStoreAndRedis(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rdb, keys := redistest.New(t)
		fx := storetest.NewFixture(t, st, "example.com", "")
		if _, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nx"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com", Queue: true, QueueDomain: "dest.test"},
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "b@dest.test", MailFrom: "m@example.com", Queue: true, QueueDomain: "dest.test"},
		}}}); err != nil {
			t.Fatal(err)
		}

		board := status.NewBoard(rdb, keys)
		hbCtx, stopHB := context.WithCancel(ctx)
		hbDone := make(chan error, 1)
		go func() {
			hbDone <- board.Heartbeat(hbCtx, status.Process{ID: "host:1", Host: "host", PID: 1, Roles: []string{"worker"}, Version: "test"},
				time.Second, 5*time.Second)
		}()
		defer func() { stopHB(); <-hbDone }()
		if err := board.RecordCronRun(ctx, status.CronRun{Task: "prune", Started: time.Now(), Duration: time.Second, OK: true, Token: 7, Owner: "o"}); err != nil {
			t.Fatal(err)
		}
		held := make(chan int64, 1)
		leaseCtx, stopLease := context.WithCancel(ctx)
		leaseDone := make(chan error, 1)
		go func() {
			leaseDone <- lease.New(lease.Options{Client: rdb, Keys: keys, Name: "cron", Owner: "me:1:aa", TTL: 10 * time.Second}).
				Run(leaseCtx, func(ctx context.Context, token int64) error {
					held <- token
					<-ctx.Done()
					return nil
				})
		}()
		defer func() { stopLease(); <-leaseDone }()
		token := <-held

		q := queue.New(queue.Options{Client: rdb, Keys: keys, MaxDeliveries: 1})
		if err := q.Enqueue(ctx, queue.Outgoing, queue.Job{ID: 1, Domain: "dest.test"}, queue.Job{ID: 2, Domain: "dest.test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Read(ctx, queue.Outgoing, "c1", 1, 0); err != nil {
			t.Fatal(err)
		}
		if _, dead, err := q.Claim(ctx, queue.Outgoing, "c2", 0, 10); err != nil || len(dead) != 1 {
			t.Fatalf("claim: dead %v, %v", dead, err)
		}

		live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys})
		var snap source.Snapshot
		waitFor(t, "the heartbeat", func() bool {
			var err error
			snap, err = live.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return len(snap.Processes) == 1
		})
		if !snap.Database.OK || !snap.Redis.OK {
			t.Fatalf("health: db %+v redis %+v", snap.Database, snap.Redis)
		}
		if snap.Schema == nil || !snap.Schema.UpToDate() {
			t.Errorf("schema = %+v, want up to date", snap.Schema)
		}
		if snap.SQLQueue == nil || snap.SQLQueue.Total != 2 {
			t.Errorf("SQL queue = %+v, want 2 rows", snap.SQLQueue)
		}
		if snap.Shape == nil || snap.Shape.Total.Total != 2 || len(snap.Shape.Domains) != 1 || snap.Shape.Domains[0].Domain != "dest.test" {
			t.Errorf("shape = %+v, want 2 rows to dest.test", snap.Shape)
		}
		if tp := snap.Throughput; tp == nil || len(tp.Accepted) != source.ThroughputMinutes || tp.Accepted[len(tp.Accepted)-1]+tp.Accepted[len(tp.Accepted)-2] != 2 {
			t.Errorf("throughput = %+v, want the 2 messages in the last minutes", snap.Throughput)
		}
		if len(snap.RetryShape) != len(source.RetryWithin())+1 || snap.WebhookFailures == nil {
			t.Errorf("retry shape %+v, webhook failures %v", snap.RetryShape, snap.WebhookFailures)
		}
		if p := snap.Processes[0]; p.ID != "host:1" || p.Roles[0] != "worker" {
			t.Errorf("process = %+v", p)
		}
		if len(snap.Leases) != 2 || snap.Leases[0].Name != "cron" || snap.Leases[0].Owner != "me:1:aa" ||
			snap.Leases[0].Token != token || snap.Leases[0].TTL <= 0 || snap.Leases[1].Held() {
			t.Errorf("leases = %+v, want cron held by me:1:aa with token %d, requeuer free", snap.Leases, token)
		}
		if len(snap.Cron) != 1 || snap.Cron[0].Task != "prune" || snap.Cron[0].Last.Token != 7 {
			t.Errorf("cron = %+v", snap.Cron)
		}
		if snap.Queue == nil || snap.Queue.Dead != 1 || snap.Queue.Inflight != 1 || snap.Queue.Streams[0].Length != 1 {
			t.Errorf("queue = %+v, want one entry left, one dead, one inflight", snap.Queue)
		}
		if len(snap.DeadLetters) != 1 || snap.DeadLetters[0].Job.ID != 1 {
			t.Errorf("dead letters = %+v", snap.DeadLetters)
		}
	})
}

// closedRedis returns a client for an address where nothing listens.
func closedRedis(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "redis://" + addr + "/0"
}

func TestLiveReportsEachSideDownSeparately(t *testing.T) {
	st := storetest.SQLite(t)
	rdb, keys := redistest.New(t)
	down, err := redisconn.New(redisconn.Options{URL: closedRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	tests := []struct {
		name            string
		o               source.LiveOptions
		dbOK, redisOK   bool
		dbErr, redisErr bool
	}{
		{"redis down keeps the SQL side", source.LiveOptions{Store: st, Redis: down, Keys: keys}, true, false, false, true},
		{"database not opened keeps the Redis side", source.LiveOptions{StoreErr: errors.New("connection refused"), Redis: rdb, Keys: keys},
			false, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := source.NewLive(tt.o).Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if snap.Database.OK != tt.dbOK || (snap.Database.Error != "") != tt.dbErr {
				t.Errorf("database = %+v", snap.Database)
			}
			if snap.Redis.OK != tt.redisOK || (snap.Redis.Error != "") != tt.redisErr {
				t.Errorf("redis = %+v", snap.Redis)
			}
			if tt.dbOK && (snap.SQLQueue == nil || snap.Schema == nil) {
				t.Errorf("SQL side missing: %+v", snap)
			}
			if tt.redisOK && (snap.Queue == nil || len(snap.Leases) != 2) {
				t.Errorf("Redis side missing: %+v", snap)
			}
			if !tt.redisOK && snap.Queue != nil {
				t.Errorf("queue stats from a Redis that is down: %+v", snap.Queue)
			}
		})
	}
}

func TestLiveFailsOnlyWhenContextEnded(t *testing.T) {
	st := storetest.SQLite(t)
	rdb, keys := redistest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys}).Snapshot(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Snapshot with an ended context: %v, want context.Canceled", err)
	}
}

// The sparklines read the per-minute counters; the minutes they cannot
// vouch for (up to the since mark's minute, or all of them once Redis lost
// its data) come from SQL, so a lost Redis never shows false zeros.
func TestLiveThroughputReadsCountersAndFallsBackToSQL(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	rdb, keys := redistest.New(t)
	fx := storetest.NewFixture(t, st, "example.com", "")
	if _, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nx"), Messages: []store.NewMessage{
		{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com"},
		{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "b@dest.test", MailFrom: "m@example.com"},
	}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	q := queue.New(queue.Options{Client: rdb, Keys: keys})
	// The counters began 10 minutes ago: that minute and earlier ones are SQL's.
	if err := q.Count(ctx, now.Add(-10*time.Minute), queue.Counts{Accepted: 5}); err != nil {
		t.Fatal(err)
	}
	if err := q.Count(ctx, now.Add(-5*time.Minute), queue.Counts{Sent: 4}); err != nil {
		t.Fatal(err)
	}
	if err := q.Count(ctx, now, queue.Counts{Sent: 7, Held: 1}); err != nil {
		t.Fatal(err)
	}
	live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys, Now: func() time.Time { return now }})
	snap, err := live.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tp := snap.Throughput
	last := source.ThroughputMinutes - 1
	if tp == nil || snap.ThroughputFrom != source.ThroughputMixed {
		t.Fatalf("throughput from %q: %+v", snap.ThroughputFrom, tp)
	}
	if tp.Sent[last] != 7 || tp.Held[last] != 1 || tp.Sent[last-5] != 4 || tp.Accepted[last-10] != 0 || sum(tp.Accepted) != 0 {
		t.Fatalf("counters not used as kept: sent %v accepted %v", tp.Sent, tp.Accepted)
	}
	// Redis loses everything: SQL gives the whole hour, with the 2 messages.
	if err := redistest.DeleteAll(ctx, rdb, keys); err != nil {
		t.Fatal(err)
	}
	snap, err = live.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.ThroughputFrom != source.ThroughputSQL || snap.Throughput == nil || sum(snap.Throughput.Accepted) != 2 {
		t.Fatalf("after losing Redis: from %q, %+v", snap.ThroughputFrom, snap.Throughput)
	}
	// Redis down and the database down: no figures rather than zeros.
	down, err := redisconn.New(redisconn.Options{URL: closedRedis(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	snap, err = source.NewLive(source.LiveOptions{StoreErr: errors.New("refused"), Redis: down, Keys: keys}).Snapshot(ctx)
	if err != nil || snap.Throughput != nil || snap.ThroughputFrom != "" {
		t.Fatalf("both down: %+v from %q, %v", snap.Throughput, snap.ThroughputFrom, err)
	}
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// The message detail carries the message's webhook requests (attempt log
// and pending requests) and its loads and clicks, read from SQL.
func TestLiveMessageDetailHasWebhooksAndTracking(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	rdb, keys := redistest.New(t)
	fx := storetest.NewFixture(t, st, "example.com", "")
	acc, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nx"), Messages: []store.NewMessage{
		{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	id := acc[0][0].MessageID
	ids, err := st.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
		{ServerID: fx.Server.ID, MessageID: id, URL: "https://h.test/", Event: "MessageSent", Payload: `{}`},
		{ServerID: fx.Server.ID, MessageID: id, URL: "https://h.test/", Event: "MessageLoaded", Payload: `{}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.ClaimWebhookRequests(ctx, ids[:1], "w", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordWebhookAttempts(ctx, []store.WebhookAttemptOutcome{{RequestID: ids[0], Owner: "w", StatusCode: 500,
		Result: "http_error", At: now, RetryAfter: now.Add(time.Minute), Error: "500"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordLoad(ctx, fx.Server.Token, acc[0][0].Token, store.TrackingHit{IP: "192.0.2.1", UserAgent: "UA", At: now},
		func(store.TrackingEvent) []store.NewWebhookRequest { return nil }); err != nil {
		t.Fatal(err)
	}
	live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys})
	d, err := live.MessageDetail(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.WebhookAttempts) != 1 || d.WebhookAttempts[0].StatusCode != 500 || len(d.PendingWebhooks) != 2 {
		t.Fatalf("webhooks: attempts %+v, pending %+v", d.WebhookAttempts, d.PendingWebhooks)
	}
	if d.Tracking == nil || len(d.Tracking.Loads) != 1 || d.Tracking.Loads[0].IP != "192.0.2.1" || d.Tracking.Loaded.IsZero() {
		t.Fatalf("tracking = %+v", d.Tracking)
	}
}

// The console's actions that change Redis are refused, before SQL
// changes, when another installation owns the key prefix; removing a
// suppression (SQL only) is not.
func TestLiveActionsRefuseAnotherInstallationsPrefix(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	rdb, keys := redistest.New(t)
	fx := storetest.NewFixture(t, st, "example.com", "")
	acc, err := st.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nx"), Messages: []store.NewMessage{
		{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "m@example.com", Queue: true, QueueDomain: "dest.test"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	id := acc[0][0].MessageID
	if err := redisconn.ClaimPrefix(ctx, rdb, keys, "ffffffffffffffffffffffffffffffff"); err != nil {
		t.Fatal(err)
	}
	live := source.NewLive(source.LiveOptions{Store: st, Redis: rdb, Keys: keys})
	var taken *redisconn.PrefixTakenError
	for _, a := range []source.Action{source.ActHold, source.ActRetry, source.ActCancel, source.ActDelete} {
		if _, err := live.Act(ctx, a, id); !errors.As(err, &taken) {
			t.Fatalf("%s = %v, want a PrefixTakenError", a, err)
		}
	}
	if _, err := live.RequeueDead(ctx, 10); !errors.As(err, &taken) {
		t.Fatalf("requeue dead = %v, want a PrefixTakenError", err)
	}
	if m, err := st.Message(ctx, id); err != nil || m.Status != store.StatusPending {
		t.Fatalf("message after the refusals: %v, %v", m, err)
	}
	if _, err := live.Act(ctx, source.ActUnsuppress, id); err != nil {
		t.Fatalf("unsuppress: %v", err)
	}
	own, err := st.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redisconn.ResetPrefix(ctx, rdb, keys, own); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Act(ctx, source.ActHold, id); err != nil {
		t.Fatalf("hold once the prefix is ours: %v", err)
	}
}
