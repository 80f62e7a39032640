package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/postalgo/postal/config"
	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/requeuer"
	"github.com/postalgo/postal/daemon/status"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/worker"
)

// Environment of the re-executed test binary that runs a worker process.
const (
	childEnv       = "POSTAL_TEST_WORKER_CHILD"
	childDBEnv     = "POSTAL_TEST_WORKER_DB"
	childPrefixEnv = "POSTAL_TEST_WORKER_PREFIX"
	childLogEnv    = "POSTAL_TEST_WORKER_LOG"
	// childHeartbeatEnv makes the child publish a heartbeat (TTL 1 s) and
	// use a visibility timeout of 5 minutes, so only the heartbeat can let
	// its work be taken over quickly.
	childHeartbeatEnv = "POSTAL_TEST_WORKER_HEARTBEAT"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChildWorker())
	}
	os.Exit(m.Run())
}

// runChildWorker is a worker process: it works the outgoing stream with a
// handler that appends each message id to a log file before "sending" it
// (a few milliseconds), until it is killed.
func runChildWorker() int {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Driver: store.SQLite, Path: os.Getenv(childDBEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := redisconn.New(redisconn.Options{URL: redisURL()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	q := queue.New(queue.Options{Client: c, Keys: redisconn.NewKeys(os.Getenv(childPrefixEnv))})
	logFile, err := os.OpenFile(os.Getenv(childLogEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := &loggingHandler{out: logFile, per: 2 * time.Millisecond}
	owner := "child:" + strconv.Itoa(os.Getpid())
	vis := config.Seconds(2)
	if os.Getenv(childHeartbeatEnv) == "1" {
		vis, h.per = 300, 20*time.Millisecond
		board := status.NewBoard(c, redisconn.NewKeys(os.Getenv(childPrefixEnv)))
		go func() {
			_ = board.Heartbeat(ctx, status.Process{ID: owner}, 200*time.Millisecond, time.Second)
		}()
	}
	w, err := worker.New(worker.Options{
		Config:   config.Worker{Threads: 2, VisibilityTimeout: vis, BatchSize: 20},
		Postal:   config.Postal{BatchQueuedMessages: true},
		Store:    s,
		Queue:    q,
		Handlers: map[queue.Kind]worker.Handler{queue.Outgoing: h},
		Owner:    owner,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// loggingHandler records every message it delivers (one line with the
// message id, written before the outcome is returned) and takes per for
// each message, as a real delivery would.
type loggingHandler struct {
	mu  sync.Mutex
	out *os.File
	per time.Duration
}

func (h *loggingHandler) Handle(ctx context.Context, batch []*store.QueuedMessage) []store.Outcome {
	outs := make([]store.Outcome, len(batch))
	for i, q := range batch {
		work := time.NewTimer(h.per)
		select {
		case <-work.C:
		case <-ctx.Done():
		}
		work.Stop()
		h.mu.Lock()
		_, _ = fmt.Fprintf(h.out, "%d\n", q.MessageID)
		h.mu.Unlock()
		outs[i] = sent(q)
	}
	return outs
}

// readLog counts the lines per message id.
func readLog(t *testing.T, path string) map[int64]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		id, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("handler log line %q: %v", sc.Text(), err)
		}
		out[id]++
	}
	return out
}

// A worker process is killed with SIGKILL in the middle of 1,000 jobs; a
// second worker (with the requeuer) completes every job, and no message gets
// a second Sent outcome.
func TestKillNineMidBatchLosesNothing(t *testing.T) {
	e := newEnv(t, 10)
	ctx := context.Background()
	acc := e.insert(t, 1000, "a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test", "h.test", "i.test", "j.test")
	e.enqueue(t, acc)
	logPath := filepath.Join(t.TempDir(), "handled.log")

	var childOut bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDBEnv+"="+e.dbPath, childPrefixEnv+"="+e.prefix, childLogEnv+"="+logPath)
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitFor(t, 60*time.Second, "the child to send 300 messages", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("child exited early: %v\n%s", err, childOut.String())
		default:
		}
		return e.countStatus(t, acc, store.StatusSent) >= 300
	})
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-exited
	exited <- nil // for the cleanup
	sentAtKill := e.countStatus(t, acc, store.StatusSent)
	childHandled := readLog(t, logPath)
	counts, err := e.s.CountQueued(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the child after %d Sent outcomes; it had handled %d messages; %d rows locked at the kill",
		sentAtKill, len(childHandled), counts.Locked)
	if sentAtKill == len(acc) {
		t.Fatal("the child finished before the kill; the test proves nothing")
	}

	// The survivor: a worker with the same short visibility timeout and
	// the requeuer (retry set and reconciliation), both in this process.
	h := &recorder{}
	o := e.workerOptions(h, 2*time.Second)
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := requeuer.New(requeuer.Options{
		Config: config.Requeuer{Interval: 0.2, ReconcileInterval: 0.5},
		Store:  e.s, Queue: e.q, Settle: time.Millisecond,
		Lease: lease.New(lease.Options{Client: e.client, Keys: e.keys, Name: "requeuer", TTL: 3 * time.Second}),
	})
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	doneR := make(chan error, 1)
	go func() { doneR <- r.Run(runCtx) }()
	stop := start(t, w)
	waitFor(t, 60*time.Second, "every job completed", func() bool { return e.countStatus(t, acc, store.StatusSent) == len(acc) })
	recovered := time.Since(killed)
	stop()
	cancel()
	if err := <-doneR; err != nil {
		t.Fatal(err)
	}
	if c, err := e.s.CountQueued(ctx, time.Now()); err != nil || c.Total != 0 {
		t.Fatalf("queued rows left: %+v, %v", c, err)
	}

	sqlDups := 0
	for _, n := range e.sentCounts(t, acc) {
		if n > 1 {
			sqlDups++
		}
	}
	_, survivorCalls := h.snapshot()
	redelivered := 0
	for id := range survivorCalls {
		if childHandled[id] > 0 {
			redelivered++
		}
	}
	for id, n := range childHandled {
		if n > 1 {
			t.Errorf("the child handled message %d %d times", id, n)
		}
	}
	if childOut.Len() > 0 {
		t.Logf("child output:\n%s", childOut.String())
	}
	t.Logf("all %d jobs completed %s after the kill; duplicates (more than one Sent outcome): %d; "+
		"handled by the child and again by the survivor (at-least-once window, in flight at the kill): %d",
		len(acc), recovered.Round(time.Millisecond), sqlDups, redelivered)
	if sqlDups != 0 {
		t.Fatalf("%d messages have more than one Sent outcome", sqlDups)
	}
	// What is handled twice is bounded by what the child had in flight:
	// 2 consumers x 40 entries, each batch topped up to 20 messages.
	if redelivered > 2*40*20 {
		t.Fatalf("%d messages handled twice, more than the child could have had in flight", redelivered)
	}
	for _, a := range acc {
		if childHandled[a.MessageID]+survivorCalls[a.MessageID] == 0 {
			t.Fatalf("message %d Sent without being handled", a.MessageID)
		}
	}
}

// A worker process with a heartbeat is killed with SIGKILL mid-load while
// its visibility timeout is 5 minutes: a surviving worker sees that the
// heartbeat is gone and takes its work over at once (its pending entries,
// and the rows it had locked, by batching too), with no requeuer running.
func TestKilledWorkersWorkIsTakenOverWhenItsHeartbeatEnds(t *testing.T) {
	e := newEnv(t, 10)
	acc := e.insert(t, 400, "a.test", "b.test", "c.test", "d.test")
	e.enqueue(t, acc)
	logPath := filepath.Join(t.TempDir(), "handled.log")
	var childOut bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childHeartbeatEnv+"=1", childDBEnv+"="+e.dbPath,
		childPrefixEnv+"="+e.prefix, childLogEnv+"="+logPath)
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitFor(t, 60*time.Second, "the child to send 40 messages", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("child exited early: %v\n%s", err, childOut.String())
		default:
		}
		return e.countStatus(t, acc, store.StatusSent) >= 40
	})
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-exited
	exited <- nil // for the cleanup
	killed := time.Now()
	counts, err := e.s.CountQueued(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if counts.Locked == 0 {
		t.Fatal("the child held no locks at the kill; the test proves nothing")
	}
	h := &recorder{}
	o := e.workerOptions(h, 5*time.Minute)
	o.Liveness = status.NewBoard(e.client, e.keys)
	o.ReapEvery, o.ReapMinIdle = 200*time.Millisecond, 300*time.Millisecond
	w, err := worker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, w)
	defer stop()
	waitFor(t, 45*time.Second, "every job completed long before the 5-minute visibility timeout", func() bool {
		return e.countStatus(t, acc, store.StatusSent) == len(acc)
	})
	t.Logf("%d rows were locked by the child at the kill; all %d jobs completed %s after it",
		counts.Locked, len(acc), time.Since(killed).Round(time.Millisecond))
	for id, n := range e.sentCounts(t, acc) {
		if n > 1 {
			t.Errorf("message %d has %d Sent outcomes", id, n)
		}
	}
}
