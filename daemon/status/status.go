// Package status publishes which processes are alive (heartbeats) and what
// the cron tasks last did (run records), for postalctl and the TUI.
//
// Contract: a process is listed by Processes while its heartbeat key
// hb:<id> exists; Heartbeat rewrites it every interval with a TTL and
// deletes it when stopped, so a crashed process disappears within the TTL.
// RecordCronRun keeps, per task, the last run (cron:<task>) and the last
// RecentRuns runs newest first (cron:<task>:runs); the set "cron" lists the
// tasks ever recorded. Nothing here is needed for correctness: losing it
// only blanks the displays until the next heartbeat or run.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/redisconn"
)

// Process describes a running postald process.
type Process struct {
	// ID identifies the process, conventionally "<host>:<pid>".
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Roles   []string  `json:"roles"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Seen is when the heartbeat was last written.
	Seen time.Time `json:"seen"`
}

// CronRun records one run of a cron task.
type CronRun struct {
	Task     string        `json:"task"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	// Token and Owner identify the cron lease term the run happened in.
	Token int64  `json:"token"`
	Owner string `json:"owner"`
}

// TaskRuns is the record of one task: its last run and the recent ones,
// newest first.
type TaskRuns struct {
	Task   string    `json:"task"`
	Last   CronRun   `json:"last"`
	Recent []CronRun `json:"recent"`
}

// RecentRuns is how many runs per task RecordCronRun keeps.
const RecentRuns = 20

// Board reads and writes heartbeats and cron run records. It is safe for
// concurrent use.
type Board struct {
	c    redis.UniversalClient
	keys redisconn.Keys
	// Log receives heartbeat write failures; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock for Seen; nil means time.Now.
	Now func() time.Time
}

// NewBoard returns a Board on c under keys. It does not contact Redis.
func NewBoard(c redis.UniversalClient, keys redisconn.Keys) *Board {
	return &Board{c: c, keys: keys}
}

func (b *Board) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

func (b *Board) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Board) hbKey(id string) string { return b.keys.Key("hb", id) }

// Heartbeat publishes p every interval, each time with the given ttl and
// Seen set to now, until ctx is done; then it deletes the heartbeat and
// returns nil. A failed write is logged and retried at the next interval
// (Redis being down must not stop the process). It returns an error at once
// when p.ID is empty or ttl is not longer than every.
func (b *Board) Heartbeat(ctx context.Context, p Process, every, ttl time.Duration) error {
	switch {
	case p.ID == "":
		return errors.New("status: heartbeat without a process id")
	case every <= 0 || ttl <= every:
		return fmt.Errorf("status: heartbeat every %v with ttl %v: want 0 < every < ttl", every, ttl)
	}
	key := b.hbKey(p.ID)
	tick := time.NewTicker(every)
	defer tick.Stop()
	failing := false
	for {
		p.Seen = b.now()
		err := b.write(ctx, key, p, ttl)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			b.log().Warn("heartbeat write failed", "process", p.ID, "err", err)
			failing = true
		case err == nil && failing:
			b.log().Info("heartbeat write recovered", "process", p.ID)
			failing = false
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := b.c.Del(dctx, key).Err(); err != nil {
				b.log().Warn("heartbeat delete failed; it will expire", "process", p.ID, "err", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

func (b *Board) write(ctx context.Context, key string, p Process, ttl time.Duration) error {
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("status: encode process %s: %w", p.ID, err)
	}
	if err := b.c.Set(ctx, key, v, ttl).Err(); err != nil {
		return fmt.Errorf("status: write heartbeat %s: %w", p.ID, err)
	}
	return nil
}

// Processes returns every process with a live heartbeat, sorted by ID. A
// heartbeat that cannot be decoded is skipped and logged. It returns a
// wrapped error when Redis fails.
func (b *Board) Processes(ctx context.Context) ([]Process, error) {
	keys, err := redisconn.ScanKeys(ctx, b.c, b.keys.Pattern("hb", ""))
	if err != nil {
		return nil, fmt.Errorf("status: list heartbeats: %w", err)
	}
	out := []Process{}
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := b.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("status: read heartbeats: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between SCAN and MGET
		}
		var p Process
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			b.log().Warn("undecodable heartbeat skipped", "key", keys[i], "err", err)
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Process) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (b *Board) cronKey(task string) string     { return b.keys.Key("cron", task) }
func (b *Board) cronRunsKey(task string) string { return b.keys.Key("cron", task, "runs") }

// RecordCronRun stores r as its task's last run and at the head of the
// task's recent runs (trimmed to RecentRuns), atomically. It returns an
// error when the task name is empty or holds a colon or space, and a wrapped
// error when Redis fails.
func (b *Board) RecordCronRun(ctx context.Context, r CronRun) error {
	if r.Task == "" || strings.ContainsAny(r.Task, ": \t\n") {
		return fmt.Errorf("status: cron task name %q must be non-empty, without colons or spaces", r.Task)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("status: encode cron run %s: %w", r.Task, err)
	}
	_, err = b.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, b.cronKey(r.Task), v, 0)
		p.LPush(ctx, b.cronRunsKey(r.Task), v)
		p.LTrim(ctx, b.cronRunsKey(r.Task), 0, RecentRuns-1)
		p.SAdd(ctx, b.keys.Key("cron"), r.Task)
		return nil
	})
	if err != nil {
		return fmt.Errorf("status: record cron run %s: %w", r.Task, err)
	}
	return nil
}

// CronRuns returns the record of every task, sorted by task name, in one
// round trip after listing the tasks. Undecodable entries are skipped. It
// returns a wrapped error when Redis fails.
func (b *Board) CronRuns(ctx context.Context) ([]TaskRuns, error) {
	tasks, err := b.c.SMembers(ctx, b.keys.Key("cron")).Result()
	if err != nil {
		return nil, fmt.Errorf("status: list cron tasks: %w", err)
	}
	slices.Sort(tasks)
	out := []TaskRuns{}
	if len(tasks) == 0 {
		return out, nil
	}
	lasts := make([]*redis.StringCmd, len(tasks))
	recents := make([]*redis.StringSliceCmd, len(tasks))
	_, err = b.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range tasks {
			lasts[i] = p.Get(ctx, b.cronKey(t))
			recents[i] = p.LRange(ctx, b.cronRunsKey(t), 0, RecentRuns-1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("status: read cron runs: %w", err)
	}
	for i, t := range tasks {
		tr := TaskRuns{Task: t, Recent: []CronRun{}}
		if s, err := lasts[i].Result(); err == nil {
			if err := json.Unmarshal([]byte(s), &tr.Last); err != nil {
				b.log().Warn("undecodable cron run skipped", "task", t, "err", err)
			}
		}
		for _, s := range recents[i].Val() {
			var r CronRun
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				b.log().Warn("undecodable cron run skipped", "task", t, "err", err)
				continue
			}
			tr.Recent = append(tr.Recent, r)
		}
		out = append(out, tr)
	}
	return out, nil
}

// Alive reports, for each process id, whether its heartbeat exists now (one
// round trip). A process missing from the map, or mapped to false, has no
// live heartbeat: it stopped, or crashed at least one heartbeat TTL ago. It
// returns a wrapped error when Redis fails, and then nothing may be
// concluded about any process.
func (b *Board) Alive(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.IntCmd, len(ids))
	_, err := b.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Exists(ctx, b.hbKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status: check heartbeats: %w", err)
	}
	for i, id := range ids {
		out[id] = cmds[i].Val() > 0
	}
	return out, nil
}
