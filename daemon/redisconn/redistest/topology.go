package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/redisconn"
)

// proc is one redis-server (or sentinel) process started for a test.
type proc struct {
	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{}
}

// tailBuffer keeps the last bytes a process wrote, for the failure
// message of a test whose servers did not come up.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 4 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailMax {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// startProc starts redis-server with args in dir; it is killed when the test
// ends. The test fails when redis-server is missing.
func startProc(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is required: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	p := &proc{cmd: cmd, out: &tailBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// startOnFreePort starts a server on a free loopback port: args gives the
// arguments for a port. It returns once the server answers there as itself.
// Picking a free port and binding it later is a race: another process may
// take the port in between (any outgoing connection on the machine may be
// given it as its local port), and then redis-server exits. So a server
// that exits before it answers is started again on another port, up to
// five times, before the test fails with what the server printed.
func startOnFreePort(t testing.TB, dir string, args func(port int) []string) (*proc, int) {
	t.Helper()
	var last *proc
	for range 5 {
		port := freeTCPPort(t)
		p := startProc(t, dir, args(port)...)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		deadline := time.Now().Add(10 * time.Second)
		for !p.hasExited() && time.Now().Before(deadline) {
			if answersAs(addr, p.cmd.Process.Pid) == nil {
				return p, port
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.kill()
		last = p
	}
	t.Fatalf("redistest: redis-server did not come up on a free port in 5 tries; it printed:\n%s", last.out)
	return nil, 0
}

// answersAs checks that the server at addr is the process pid, not some
// other server that took the port first.
func answersAs(addr string, pid int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "process_id:"+strconv.Itoa(pid)+"\r\n") {
		return fmt.Errorf("%s is another server than process %d", addr, pid)
	}
	return nil
}

// exitedReport names the processes of procs that have exited, with the
// end of what they printed, for a failure message ("" when all run).
func exitedReport(procs []*proc, names []string) string {
	var b strings.Builder
	for i, p := range procs {
		if p.hasExited() {
			fmt.Fprintf(&b, "\n%s exited; it printed:\n%s", names[i], p.out)
		}
	}
	return b.String()
}

// freeTCPPort returns a loopback port that is free now, and whose cluster
// bus port (port+10000) is free too.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			_ = ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port
	}
	t.Fatalf("redistest: no free port pair found")
	return 0
}

// waitUntil polls cond until it returns nil or d passes; then the test
// fails with what and cond's last error.
func waitUntil(t testing.TB, what string, d time.Duration, cond func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s not within %s: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cluster is a private Redis Cluster of three masters without replicas.
type Cluster struct {
	// Addrs are the masters' host:port addresses, the seeds a client needs.
	Addrs []string
}

// Options returns redisconn options for the cluster.
func (c *Cluster) Options() redisconn.Options {
	return redisconn.Options{Addrs: c.Addrs}
}

// StartCluster starts three cluster-enabled redis-server processes on free
// loopback ports in a temporary directory, joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok. The processes are killed when the test ends. The test
// fails (it never skips) when redis-server or redis-cli is missing or the
// cluster does not form within 30 s.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest: redis-cli is required: %v", err)
	}
	dir := t.TempDir()
	c := &Cluster{}
	var procs []*proc
	for i := range 3 {
		nodeDir := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(nodeDir, 0o700); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		p, port := startOnFreePort(t, nodeDir, func(port int) []string {
			return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
				"--save", "", "--appendonly", "no", "--dir", nodeDir}
		})
		procs = append(procs, p)
		c.Addrs = append(c.Addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range c.Addrs {
		waitUntil(t, "cluster_state:ok on "+a, 30*time.Second, func(ctx context.Context) error {
			n := redis.NewClient(&redis.Options{Addr: a})
			defer n.Close()
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("cluster info: %s%s", strings.SplitN(info, "\n", 2)[0], exitedReport(procs, c.Addrs))
			}
			return nil
		})
	}
	return c
}

// SentinelMaster is the master name StartSentinel monitors.
const SentinelMaster = "postaltest"

// Sentinel is a private Sentinel deployment: a master, one replica and
// three sentinels with a quorum of two.
type Sentinel struct {
	// Addrs are the sentinels' host:port addresses.
	Addrs []string
	// MasterName is the monitored master's name.
	MasterName string
}

// Options returns redisconn options for the deployment.
func (s *Sentinel) Options() redisconn.Options {
	return redisconn.Options{Addrs: s.Addrs, MasterName: s.MasterName}
}

// StartSentinel starts a master, a replica of it and three sentinels
// monitoring it, on free loopback ports in a temporary directory, and
// waits until every sentinel knows the replica and the other sentinels
// (so that a failover can start at once). The processes are killed when
// the test ends. The test fails (it never skips) when they do not come up
// within 30 s.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	dir := t.TempDir()
	var procs []*proc
	var names []string
	var master, replica int
	for i := range 2 {
		d := filepath.Join(dir, "data"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		p, port := startOnFreePort(t, d, func(port int) []string {
			args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d}
			if i == 1 {
				args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(master))
			}
			return args
		})
		if i == 0 {
			master = port
		} else {
			replica = port
		}
		procs = append(procs, p)
		names = append(names, fmt.Sprintf("redis-server 127.0.0.1:%d", port))
	}
	s := &Sentinel{MasterName: SentinelMaster}
	for i := range 3 {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel%d.conf", i))
		p, port := startOnFreePort(t, dir, func(port int) []string {
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\n"+
				"sentinel down-after-milliseconds %[3]s 1000\n"+
				"sentinel failover-timeout %[3]s 5000\n"+
				"sentinel parallel-syncs %[3]s 1\n", port, dir, SentinelMaster, master)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatalf("redistest: %v", err)
			}
			return []string{conf, "--sentinel"}
		})
		procs = append(procs, p)
		a := fmt.Sprintf("127.0.0.1:%d", port)
		names = append(names, "sentinel "+a)
		s.Addrs = append(s.Addrs, a)
	}
	for _, a := range s.Addrs {
		waitUntil(t, "sentinel "+a+" sees the replica and its peers", 30*time.Second, func(ctx context.Context) error {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a})
			defer sc.Close()
			reps, err := sc.Replicas(ctx, SentinelMaster).Result()
			if err != nil {
				return fmt.Errorf("%w%s", err, exitedReport(procs, names))
			}
			if len(reps) < 1 {
				return fmt.Errorf("%d replicas known", len(reps))
			}
			// A replica seen with its link down (before its first sync)
			// is no candidate for promotion until the sentinel's next
			// INFO of it.
			if st := reps[0]["master-link-status"]; st != "ok" {
				return fmt.Errorf("replica master-link-status %q", st)
			}
			if fl := reps[0]["flags"]; fl != "slave" {
				return fmt.Errorf("replica flags %q", fl)
			}
			peers, err := sc.Sentinels(ctx, SentinelMaster).Result()
			if err != nil {
				return err
			}
			if len(peers) < 2 {
				return fmt.Errorf("%d other sentinels known%s", len(peers), exitedReport(procs, names))
			}
			return nil
		})
	}
	// The replica must have synced, or a failover finds no good replica.
	waitUntil(t, "replica in sync", 30*time.Second, func(ctx context.Context) error {
		r := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", replica)})
		defer r.Close()
		info, err := r.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica link not up")
		}
		return nil
	})
	return s
}

// Master returns the address the sentinels currently give for the master.
func (s *Sentinel) Master(ctx context.Context) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return "", fmt.Errorf("redistest: master address: %w", err)
	}
	return net.JoinHostPort(addr[0], addr[1]), nil
}

// Failover asks a sentinel to fail the master over to the replica
// (SENTINEL FAILOVER) and returns the old master's address. It returns
// at once; use Master to see the promotion.
func (s *Sentinel) Failover(ctx context.Context) (string, error) {
	old, err := s.Master(ctx)
	if err != nil {
		return "", err
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
	defer sc.Close()
	if err := sc.Failover(ctx, s.MasterName).Err(); err != nil {
		return "", fmt.Errorf("redistest: sentinel failover: %w", err)
	}
	return old, nil
}

// Topology is a Redis deployment a test can start: Start starts private
// servers for the test and returns the options that reach them.
type Topology struct {
	Name  string
	Start func(t testing.TB) redisconn.Options
}

// Topologies returns the deployments besides a single node that a
// package's Redis code must work on: "cluster" (StartCluster) and
// "sentinel" (StartSentinel).
func Topologies() []Topology {
	return []Topology{
		{"cluster", func(t testing.TB) redisconn.Options { return StartCluster(t).Options() }},
		{"sentinel", func(t testing.TB) redisconn.Options { return StartSentinel(t).Options() }},
	}
}
