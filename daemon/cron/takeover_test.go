package cron_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/cron"
	"github.com/postalgo/postal/daemon/lease"
	"github.com/postalgo/postal/daemon/redisconn"
	"github.com/postalgo/postal/daemon/status"
)

const (
	childEnv       = "POSTAL_TEST_CRON_CHILD"
	childPrefixEnv = "POSTAL_TEST_CRON_PREFIX"
	childTTL       = 2 * time.Second
	childRenew     = childTTL / 3
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChildCron())
	}
	os.Exit(m.Run())
}

// runChildCron is a cron process with one task, "tick", every second; each
// run appends "<unix ms> <pid>" to the list test:ticks.
func runChildCron() int {
	c, err := redisconn.New(redisconn.Options{URL: redisURL()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keys := redisconn.NewKeys(os.Getenv(childPrefixEnv))
	tick := cron.Task{Name: "tick", Every: time.Second, Run: func(ctx context.Context) error {
		return c.RPush(ctx, keys.Key("test", "ticks"), fmt.Sprintf("%d %d", time.Now().UnixMilli(), os.Getpid())).Err()
	}}
	l := lease.New(lease.Options{Client: c, Keys: keys, Name: "cron", TTL: childTTL, RenewEvery: childRenew})
	cr, err := cron.New(cron.Options{Board: status.NewBoard(c, keys), Lease: l, Tasks: []cron.Task{tick}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cr.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type tick struct {
	at  time.Time
	pid int
}

// Two cron processes: the task runs once per interval, only in the lease
// holder; after the holder is killed with SIGKILL the standby takes over
// within the lease TTL plus one renew interval.
func TestTwoCronProcessesRunEachSlotOnceAndTheStandbyTakesOver(t *testing.T) {
	c, keys, prefix := newRedis(t)
	ctx := context.Background()
	type child struct {
		cmd    *exec.Cmd
		out    *bytes.Buffer
		exited chan struct{}
	}
	children := map[int]*child{}
	for range 2 {
		ch := &child{out: &bytes.Buffer{}, exited: make(chan struct{})}
		ch.cmd = exec.Command(os.Args[0], "-test.run=^$")
		ch.cmd.Env = append(os.Environ(), childEnv+"=1", childPrefixEnv+"="+prefix)
		ch.cmd.Stdout, ch.cmd.Stderr = ch.out, ch.out
		if err := ch.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = ch.cmd.Wait()
			close(ch.exited)
		}()
		children[ch.cmd.Process.Pid] = ch
		t.Cleanup(func() {
			_ = ch.cmd.Process.Kill()
			<-ch.exited
		})
	}
	ticks := func() []tick {
		raw, err := c.LRange(ctx, keys.Key("test", "ticks"), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]tick, len(raw))
		for i, r := range raw {
			ms, pid, _ := strings.Cut(r, " ")
			m, err1 := strconv.ParseInt(ms, 10, 64)
			p, err2 := strconv.Atoi(pid)
			if err1 != nil || err2 != nil {
				t.Fatalf("bad tick %q", r)
			}
			out[i] = tick{at: time.UnixMilli(m), pid: p}
		}
		return out
	}
	holderPID := func() int {
		owner, _, _, err := lease.Holder(ctx, c, keys, "cron")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(owner, ":")
		if len(parts) < 3 {
			return 0
		}
		pid, _ := strconv.Atoi(parts[len(parts)-2])
		return pid
	}
	board := status.NewBoard(c, keys)
	lastRecorded := func() time.Time {
		runs, err := board.CronRuns(ctx)
		if err != nil || len(runs) == 0 {
			return time.Time{}
		}
		return runs[0].Last.Started
	}

	waitFor(t, 20*time.Second, "three ticks", func() bool { return len(ticks()) >= 3 })
	holder := holderPID()
	standby := 0
	for pid := range children {
		if pid != holder {
			standby = pid
		}
	}
	if children[holder] == nil || standby == 0 {
		t.Fatalf("lease holder pid %d is not one of the children", holder)
	}
	// Kill right after a run was recorded, between two runs, so that the
	// kill does not cut a run in half (such a run may legitimately repeat).
	n := len(ticks())
	waitFor(t, 10*time.Second, "the next tick recorded", func() bool {
		ts := ticks()
		return len(ts) > n && !lastRecorded().Before(ts[len(ts)-1].at.Add(-time.Second/2))
	})
	if err := children[holder].cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-children[holder].exited
	killed := time.Now()
	beforeKill := len(ticks())
	waitFor(t, 10*time.Second, "the standby to hold the lease", func() bool { return holderPID() == standby })
	takeover := time.Since(killed)
	waitFor(t, 10*time.Second, "the standby's first tick", func() bool {
		ts := ticks()
		return len(ts) > beforeKill && ts[len(ts)-1].pid == standby
	})
	firstRun := time.Since(killed)
	waitFor(t, 10*time.Second, "three ticks from the standby", func() bool { return len(ticks()) >= beforeKill+3 })

	t.Logf("standby took the lease %s after the kill (bound: TTL %s + renew %s); its first run came %s after the kill",
		takeover.Round(time.Millisecond), childTTL, childRenew, firstRun.Round(time.Millisecond))
	if bound := childTTL + childRenew + 250*time.Millisecond; takeover > bound {
		t.Errorf("takeover took %s, more than TTL + renew interval (+250ms scheduling slack) = %s", takeover, bound)
	}
	ts := ticks()
	seen := map[int64]int{}
	for i, tk := range ts {
		slot := tk.at.Unix()
		if prev, dup := seen[slot]; dup {
			t.Errorf("slot %d ran twice: tick %d (pid %d) and tick %d (pid %d)", slot, prev, ts[prev].pid, i, tk.pid)
		}
		seen[slot] = i
		want := holder
		if i >= beforeKill {
			want = standby
		}
		if tk.pid != want {
			t.Errorf("tick %d at %s ran in pid %d, want %d (only the lease holder acts)", i, tk.at.Format(time.StampMilli), tk.pid, want)
		}
	}
	// The run records carry each term's fencing token: the standby's term
	// has a larger one.
	runs, err := board.CronRuns(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("CronRuns = %+v, %v", runs, err)
	}
	tokens := map[string]int64{}
	for _, r := range runs[0].Recent {
		pid := r.Owner
		if parts := strings.Split(r.Owner, ":"); len(parts) >= 3 {
			pid = parts[len(parts)-2]
		}
		if r.Token > tokens[pid] {
			tokens[pid] = r.Token
		}
	}
	if ht, st := tokens[strconv.Itoa(holder)], tokens[strconv.Itoa(standby)]; ht == 0 || st <= ht {
		t.Errorf("fencing tokens: holder %d, standby %d; want both recorded and the standby's larger", ht, st)
	}
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		<-tick.C
	}
}
