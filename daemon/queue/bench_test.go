package queue_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

const benchBatch = 100

// BenchmarkEnqueueReadAck measures the queue's full cycle, a batch at a time:
// Enqueue (MULTI XADD*n HSET), Read (XREADGROUP), Ack (Lua XACK XDEL HDEL).
func BenchmarkEnqueueReadAck(b *testing.B) {
	f := newFixture(b, queue.Options{})
	ctx := context.Background()
	batch := jobs(1, benchBatch)
	for b.Loop() {
		if err := f.q.Enqueue(ctx, queue.Outgoing, batch...); err != nil {
			b.Fatal(err)
		}
		ds, err := f.q.Read(ctx, queue.Outgoing, "bench", benchBatch, 0)
		if err != nil || len(ds) != benchBatch {
			b.Fatalf("Read = %d, %v; want %d", len(ds), err, benchBatch)
		}
		if err := f.q.Ack(ctx, queue.Outgoing, ds...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkRawXAddXReadGroup is the floor to compare with: plain go-redis,
// pipelined XADD, XREADGROUP and one XACK, same batch, same Redis.
func BenchmarkRawXAddXReadGroup(b *testing.B) {
	c, keys := redistest.New(b)
	ctx := context.Background()
	stream := keys.Key("raw")
	if err := c.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		b.Fatal(err)
	}
	batch := jobs(1, benchBatch)
	for b.Loop() {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, j := range batch {
				p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", j.ID, "domain", j.Domain}})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: "g", Consumer: "bench", Streams: []string{stream, ">"}, Count: benchBatch, Block: -1,
		}).Result()
		if err != nil || len(res) != 1 || len(res[0].Messages) != benchBatch {
			b.Fatalf("XREADGROUP = %v, %v", len(res), err)
		}
		ids := make([]string, len(res[0].Messages))
		for i, m := range res[0].Messages {
			ids[i] = m.ID
		}
		if err := c.XAck(ctx, stream, "g", ids...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkJournal is the sent-journal's share of one delivery, a batch at
// a time as the worker uses it: Lookup (MGET) at the claim, Record
// (pipelined SET PX, 200-byte values) after the sends, Forget (UNLINK) after
// the commit. Compare its ns/msg with BenchmarkEnqueueReadAck's.
func BenchmarkJournal(b *testing.B) {
	f := newFixture(b, queue.Options{})
	j, err := f.q.Journal(queue.Outgoing, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := make([]int64, benchBatch)
	values := make([][]byte, benchBatch)
	for i := range ids {
		ids[i] = int64(i + 1)
		values[i] = bytes.Repeat([]byte("x"), 200)
	}
	for b.Loop() {
		if _, err := j.Lookup(ctx, ids); err != nil {
			b.Fatal(err)
		}
		if err := j.Record(ctx, ids, values); err != nil {
			b.Fatal(err)
		}
		if err := j.Forget(ctx, ids...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/msg")
}
