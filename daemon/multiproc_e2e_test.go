package daemon_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/store/storetest"
)

// multiSink is the receiving server of the multi-process test: it records
// every message by its Message-ID, takes DATADelay to answer DATA (so
// messages are on the wire when a worker is killed) and counts the sessions
// inside DATA at any moment.
type multiSink struct {
	delay  time.Duration
	inData atomic.Int64
	mu     sync.Mutex
	got    map[string]int
	total  int
	// wire is, per Message-ID, when its first DATA began and when the
	// receiver answered it.
	wire map[string][2]time.Time
}

var messageIDHeader = regexp.MustCompile(`(?mi)^Message-ID:\s*<([^>\r\n]+)>`)

func (s *multiSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &multiSession{s: s}, nil }

type multiSession struct{ s *multiSink }

func (*multiSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*multiSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*multiSession) Reset()                               {}
func (*multiSession) Logout() error                        { return nil }

func (ss *multiSession) Data(r io.Reader) error {
	ss.s.inData.Add(1)
	defer ss.s.inData.Add(-1)
	began := time.Now()
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	time.Sleep(ss.s.delay) // DATA is on the wire meanwhile: the sender waits for our 250
	id := ""
	if m := messageIDHeader.FindSubmatch(data); m != nil {
		id = string(m[1])
	}
	ss.s.mu.Lock()
	ss.s.got[id]++
	ss.s.total++
	if _, ok := ss.s.wire[id]; !ok {
		ss.s.wire[id] = [2]time.Time{began, time.Now()}
	}
	ss.s.mu.Unlock()
	return nil
}

func (s *multiSink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// envInt reads a non-negative integer knob from the environment
// (scripts/bench/multiproc.sh sets them), else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

// Several processes on one PostgreSQL database and one Redis: two
// smtp-servers, three workers and two processes running cron+requeuer.
// Under SMTP load from clients that spread over both smtp-servers, one
// process of each kind is killed with SIGKILL in turn: an smtp-server (its
// clients retry on the other, as an MTA would), a worker, and the holder
// of the requeuer lease (the other copy takes the lease). Every message that
// got a 250 arrives at the receiving server, SQL agrees (all Sent, no queued
// row left), and the only duplicates are SMTP's own: a message whose DATA
// was on the wire to the receiver when the worker died, or one a client
// sent again because the dying smtp-server never answered its DATA.
//
// POSTAL_E2E_MULTIPROC_N (messages, default 1500), _CLIENTS (default 8) and
// _DATA_DELAY_MS (default 100) size the run, and _KILL=0 runs it without
// kills (a throughput figure); scripts/bench/multiproc.sh runs it bigger
// with binaries built without the race detector.
func TestMultiProcessKillAnyOneLosesNothing(t *testing.T) {
	total := envInt("POSTAL_E2E_MULTIPROC_N", 1500)
	clients := envInt("POSTAL_E2E_MULTIPROC_CLIENTS", 8)
	delay := time.Duration(envInt("POSTAL_E2E_MULTIPROC_DATA_DELAY_MS", 100)) * time.Millisecond
	kills := envInt("POSTAL_E2E_MULTIPROC_KILL", 1) != 0
	long := 120*time.Second + time.Duration(total/20)*time.Second // bench sizes
	if total < 10 || clients < 1 {
		t.Fatalf("POSTAL_E2E_MULTIPROC_N=%d, _CLIENTS=%d: want at least 10 messages and 1 client", total, clients)
	}

	snk := &multiSink{delay: delay, got: map[string]int{}, wire: map[string][2]time.Time{}}
	srv := smtp.NewServer(snk)
	srv.Domain = "sink.test"
	srv.ErrorLog = smtpDiscard{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	sinkPort := ln.Addr().(*net.TCPAddr).Port

	r := &redisProc{port: freePort(t)}
	r.start(t)
	t.Cleanup(r.stop)
	pg := storetest.PostgresOptions(t)

	in := newInstall(t, false)
	in.extra = []string{
		"DATABASE_DRIVER=postgres", "DATABASE_URL=" + pg.URL,
		fmt.Sprintf("POSTAL_SMTP_RELAYS=smtp://127.0.0.1:%d?ssl_mode=None", sinkPort),
		"POSTAL_SMTP_HOSTNAME=postal.test",
		"SMTP_SERVER_MAX_CONNECTIONS_PER_IP=1000",
		"REQUEUER_RECONCILE_INTERVAL=2", "REQUEUER_LOCK_TTL=3", "CRON_LOCK_TTL=3",
		"LOGGING_LEVEL=warn",
	}
	_, postalctl := binaries(t)
	upgrade := exec.Command(postalctl, "--config", in.config, "upgrade")
	upgrade.Env = in.env(r.url())
	if out, err := upgrade.CombinedOutput(); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	postalctlJSON(t, in, nil, "org", "create", "acme")
	postalctlJSON(t, in, nil, "server", "create", "acme/mail")
	postalctlJSON(t, in, nil, "domain", "add", "acme/mail", "example.com", "--verified")
	postalctlJSON(t, in, nil, "credential", "create", "acme/mail", "--type", "smtp-ip", "local", "--key", "127.0.0.1/32")

	// Each process gets its own health port (and smtp-server its own SMTP
	// port) through the environment, as an operator's unit files would.
	type member struct {
		name string
		p    *proc
		port int // SMTP port of an smtp-server
	}
	start := func(name, roles string, smtpPort int) member {
		pi := in
		health := freePort(t)
		pi.healthPort, pi.smtpHealthPort = health, health
		pi.extra = append(append([]string(nil), in.extra...), fmt.Sprintf("SMTP_SERVER_DEFAULT_PORT=%d", smtpPort))
		p := startPostald(t, pi, r.url(), "--role", roles)
		waitFor(t, name+" ready", 60*time.Second, func() bool { return readyStatus(health) == 200 })
		return member{name: name, p: p, port: smtpPort}
	}
	smtpA := start("smtp-server A", "smtp-server", in.smtpPort)
	smtpB := start("smtp-server B", "smtp-server", freePort(t))
	var workers []member
	for i := range 3 {
		workers = append(workers, start(fmt.Sprintf("worker %d", i+1), "worker", in.smtpPort))
	}
	crons := []member{start("cron+requeuer 1", "cron,requeuer", in.smtpPort), start("cron+requeuer 2", "cron,requeuer", in.smtpPort)}

	// Load: clients take message numbers from a channel and send each
	// until some smtp-server answers 250, switching server on a refused
	// connection or a 4xx, as an MTA would. A message whose DATA was sent
	// but not answered (the server died) is ambiguous: it may have been
	// accepted, and the client's second try makes a second message.
	ports := []int{smtpA.port, smtpB.port}
	var (
		accepted  atomic.Int64
		retries   atomic.Int64
		mu        sync.Mutex
		ambiguous = map[string]bool{}
		loadErr   error
	)
	seqs := make(chan int)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			server := c % 2
			for seq := range seqs {
				id := fmt.Sprintf("load-%d@multi.test", seq)
				for attempt := 0; ; attempt++ {
					sent, err := relayOne(ports[server], id)
					if err == nil {
						accepted.Add(1)
						break
					}
					if sent {
						mu.Lock()
						ambiguous[id] = true
						mu.Unlock()
					}
					if attempt == 50 {
						mu.Lock()
						loadErr = fmt.Errorf("message %s not accepted after 50 tries: %w", id, err)
						mu.Unlock()
						return
					}
					retries.Add(1)
					server = 1 - server
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	go func() {
		for i := range total {
			seqs <- i
		}
		close(seqs)
	}()

	kill := func(m member) {
		t.Helper()
		if err := m.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", m.name, err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer rdb.Close()
	prefix := in.prefix
	leaseOwner := func() string {
		v, _ := rdb.Get(context.Background(), "{"+prefix+"}:lease:requeuer").Result()
		_, owner, _ := strings.Cut(v, " ")
		return owner
	}
	pidOf := func(owner string) int { // "host:pid:random"
		parts := strings.Split(owner, ":")
		if len(parts) < 3 {
			return 0
		}
		pid, _ := strconv.Atoi(parts[len(parts)-2])
		return pid
	}

	began := time.Now()
	var midData int64
	workerKilled := began
	if kills {
		waitFor(t, "a fifth of the load accepted", long, func() bool { return accepted.Load() >= int64(total/5) })
		kill(smtpA)
		t.Logf("killed %s after %d accepted", smtpA.name, accepted.Load())

		waitFor(t, "two fifths delivered", long, func() bool { return snk.distinct() >= 2*total/5 })
		midData = snk.inData.Load()
		kill(workers[0])
		workerKilled = time.Now()
		t.Logf("killed %s after %d delivered; %d sessions were inside DATA at the receiver", workers[0].name, snk.distinct(), midData)

		waitFor(t, "three fifths delivered", long, func() bool { return snk.distinct() >= 3*total/5 })
		var holder, other member
		waitFor(t, "a requeuer lease holder", 30*time.Second, func() bool {
			pid := pidOf(leaseOwner())
			for i, m := range crons {
				if m.p.cmd.Process.Pid == pid {
					holder, other = m, crons[1-i]
					return true
				}
			}
			return false
		})
		kill(holder)
		t.Logf("killed %s (requeuer lease holder) after %d delivered", holder.name, snk.distinct())
		waitFor(t, other.name+" to take the requeuer lease", 30*time.Second, func() bool {
			return pidOf(leaseOwner()) == other.p.cmd.Process.Pid
		})
	}

	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	acceptedAll := time.Now()
	waitFor(t, "every accepted message at the receiver", long, func() bool { return snk.distinct() >= total })
	elapsed := time.Since(began)

	// Late duplicates would still be on their way: SQL must show no work
	// left before the sink is judged.
	db, err := sql.Open("pgx", pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, "no queued rows left", 60*time.Second, func() bool {
		var n int
		return db.QueryRow(`SELECT count(*) FROM queued_messages`).Scan(&n) == nil && n == 0
	})
	rows, err := db.Query(`SELECT status, count(*) FROM messages GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	byStatus := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		byStatus[s] = n
	}
	rows.Close()
	var fromJournal int
	if err := db.QueryRow(`SELECT count(*) FROM deliveries WHERE details LIKE '%not sent again)'`).Scan(&fromJournal); err != nil {
		t.Fatal(err)
	}

	snk.mu.Lock()
	defer snk.mu.Unlock()
	var lost []string
	for seq := range total {
		if id := fmt.Sprintf("load-%d@multi.test", seq); snk.got[id] == 0 {
			lost = append(lost, id)
		}
	}
	// A duplicate SMTP itself explains: the first copy's DATA was on the
	// wire (begun, not yet answered) when the worker was killed, so that
	// worker never saw the 250. 50 ms either side allow for the kill taking
	// effect, and for the 250 reaching the worker and its sent-journal
	// record reaching Redis (one pipelined write) after the receiver's
	// clock read its answer time. Anything else is our fault.
	dupWorker, dupClient := 0, 0
	var ours []string
	for id, n := range snk.got {
		if n < 2 {
			continue
		}
		if ambiguous[id] {
			dupClient += n - 1
			continue
		}
		dupWorker += n - 1
		w := snk.wire[id]
		if w[0].After(workerKilled.Add(50*time.Millisecond)) || w[1].Before(workerKilled.Add(-50*time.Millisecond)) {
			ours = append(ours, fmt.Sprintf("%s (DATA %s..%s after the kill)", id,
				w[0].Sub(workerKilled).Round(time.Millisecond), w[1].Sub(workerKilled).Round(time.Millisecond)))
		}
	}
	// Each accepted submission is one message row; client retries of an
	// ambiguous message may have made two.
	sent := byStatus["Sent"]
	t.Logf("%d messages through 7 processes in %s (%.0f msg/s end to end; all accepted %s after the start): "+
		"%d client retries, %d ambiguous; duplicates at the receiver: %d after the worker kill (at most %d were inside DATA), "+
		"%d from client retries; SQL %v",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), acceptedAll.Sub(began).Round(time.Millisecond),
		retries.Load(), len(ambiguous), dupWorker, midData, dupClient, byStatus)
	t.Logf("RESULT n=%d seconds=%.1f rate=%.0f lost=%d dup_worker=%d dup_not_on_wire=%d in_data_at_kill=%d dup_client=%d from_journal=%d",
		total, elapsed.Seconds(), float64(total)/elapsed.Seconds(), len(lost), dupWorker, len(ours), midData, dupClient, fromJournal)
	if len(lost) > 0 {
		t.Errorf("%d accepted messages never arrived, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if int64(dupWorker) > midData || len(ours) > 0 {
		t.Errorf("%d duplicates not caused by client retries (at most %d sessions were inside DATA at the worker kill); "+
			"%d of them were not on the wire at the kill: %v", dupWorker, midData, len(ours), ours)
	}
	if sent < total || sent > total+len(ambiguous) || len(byStatus) != 1 {
		t.Errorf("SQL: %v; want only Sent, between %d and %d", byStatus, total, total+len(ambiguous))
	}
	if snk.total != sent+dupWorker {
		t.Errorf("receiver got %d messages for %d Sent rows and %d worker duplicates", snk.total, sent, dupWorker)
	}
	if t.Failed() {
		for _, m := range append(append([]member{smtpA, smtpB}, workers...), crons...) {
			t.Logf("%s stderr (tail):\n%s", m.name, tail(m.p, 3000))
		}
	}
}

// relayOne submits one message with the given Message-ID on a fresh
// session. sent reports whether the message's data went out, so that an
// error after it leaves the outcome unknown to the client.
func relayOne(port int, id string) (sent bool, err error) {
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false, err
	}
	defer c.Close()
	if err := c.Hello("client.multi.test"); err != nil {
		return false, err
	}
	if err := c.Mail("alice@example.com", nil); err != nil {
		return false, err
	}
	if err := c.Rcpt("bob@dest.test", nil); err != nil {
		return false, err
	}
	w, err := c.Data()
	if err != nil {
		return false, err
	}
	msg := "From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: multi\r\nMessage-ID: <" + id + ">\r\n" +
		"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n" + strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 20)
	if _, err := io.WriteString(w, msg); err != nil {
		return true, err
	}
	if err := w.Close(); err != nil {
		var se *smtp.SMTPError
		return !errors.As(err, &se), err // a reply is a definite refusal
	}
	_ = c.Quit()
	return true, nil
}

type smtpDiscard struct{}

func (smtpDiscard) Printf(string, ...any) {}
func (smtpDiscard) Println(...any)        {}

// tail returns the last n bytes p wrote to stderr so far.
func tail(p *proc, n int) string {
	s := p.stderr.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
