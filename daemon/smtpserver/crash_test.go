package smtpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/intake"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/smtpserver"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// crashChildEnv, when set, makes the test binary run an SMTP server and an
// intake (described by the JSON value) instead of the tests, until killed.
const crashChildEnv = "POSTAL_SMTPSERVER_TEST_CHILD"

type childSpec struct {
	SQLitePath  string `json:"sqlite_path"`
	RedisURL    string `json:"redis_url"`
	RedisPrefix string `json:"redis_prefix"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		if err := runChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild serves SMTP on 127.0.0.1:0, prints "ADDR <address>" and runs
// until the parent kills it.
func runChild(specJSON string) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Driver: store.SQLite, Path: spec.SQLitePath})
	if err != nil {
		return err
	}
	rc, err := redisconn.New(redisconn.Options{URL: spec.RedisURL})
	if err != nil {
		return err
	}
	q := queue.New(queue.Options{Client: rc, Keys: redisconn.NewKeys(spec.RedisPrefix)})
	in := intake.New(intake.Options{Store: st, Queue: q})
	go func() { _ = in.Run(ctx) }()
	cfg, postal, dns := testConfig()
	cfg.DefaultBindAddress, cfg.DefaultPort = "127.0.0.1", 0
	srv, err := smtpserver.New(smtpserver.Options{Config: cfg, Postal: postal, DNS: dns, Store: st, Intake: in})
	if err != nil {
		return err
	}
	fmt.Printf("ADDR %s\n", srv.Addr())
	return srv.Run(ctx)
}

func TestMessageIsDurableWhenThe250IsSent(t *testing.T) {
	opts := storetest.SQLiteOptions(t)
	ctx := context.Background()
	setup, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Migrate(ctx, false); err != nil {
		t.Fatal(err)
	}
	fx := storetest.NewFixture(t, setup, "example.com", "")
	_ = setup.Close()

	rc, keys := redistest.New(t)
	spec, _ := json.Marshal(childSpec{SQLitePath: opts.Path, RedisURL: redistest.URL(), RedisPrefix: strings.Trim(keys.Prefix(), "{}:")})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addrLine := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if a, ok := strings.CutPrefix(s.Text(), "ADDR "); ok {
				addrLine <- a
				return
			}
		}
		close(addrLine)
	}()
	var addr string
	select {
	case a, ok := <-addrLine:
		if !ok {
			t.Fatal("the child exited without serving")
		}
		addr = a
	case <-time.After(30 * time.Second):
		t.Fatal("the child did not start serving within 30s")
	}

	e := &env{t: t, addr: addr, fx: fx}
	c := e.dialAuth()
	if err := send(c, "alice@example.com", []string{"bob@example.org"}, message("alice@example.com", "survives kill -9")); err != nil {
		t.Fatalf("send: %v", err)
	}
	// The client has its 250: kill the server at once, without any chance
	// to flush or shut down.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := st.Messages(ctx, []int64{1})
	if err != nil || len(ms) != 1 {
		t.Fatalf("after kill -9: messages %v, %v; want message 1", ms, err)
	}
	m := ms[0]
	if m.Subject != "survives kill -9" || m.RcptTo != "bob@example.org" || m.Scope != store.ScopeOutgoing {
		t.Fatalf("stored message %+v", m)
	}
	raw, err := st.RawMessage(ctx, m.RawMessageID)
	if err != nil || !strings.Contains(string(raw), "Subject: survives kill -9\r\n") {
		t.Fatalf("raw body after kill -9: %q, %v", raw, err)
	}
	qs, err := st.QueuedMessages(ctx, 0, 10)
	if err != nil || len(qs) != 1 || qs[0].MessageID != m.ID || qs[0].Domain != "example.org" {
		t.Fatalf("queued rows after kill -9: %+v, %v; want one for message %d", qs, err, m.ID)
	}
	// Intake dispatches to Redis after answering, so the kill may have
	// come first: the row must be due and unlocked, which is what the
	// requeuer's reconciliation dispatches when Redis does not know it.
	due, err := st.DueQueued(ctx, time.Now().Add(time.Minute), 0, 10)
	if err != nil || len(due) != 1 || due[0].ID != qs[0].ID {
		t.Fatalf("due rows after kill -9: %+v, %v; want the queued row", due, err)
	}
	stats, err := queue.New(queue.Options{Client: rc, Keys: keys}).Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Inflight > 1 {
		t.Fatalf("inflight dispatch entries = %d, want at most the message's 1", stats.Inflight)
	}
}
