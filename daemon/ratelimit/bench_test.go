package ratelimit_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/ratelimit"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
)

// BenchmarkCount compares, against the real Redis, the atomic
// check-and-count a failed AUTH now costs (Acquire: one script) with the
// separate check and count it replaced (Exceeded then Record), over many
// subjects in parallel. The limit is high enough that every Acquire
// counts (a refused one is cheaper).
func BenchmarkCount(b *testing.B) {
	ctx := context.Background()
	rdb, keys := redistest.New(b)
	w, err := ratelimit.New(ratelimit.Options{Client: rdb, Keys: keys, Name: "bench", Max: 1 << 20, Window: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	subject := func() string { return "192.0.2." + strconv.FormatInt(n.Add(1)%250, 10) }
	b.Run("acquire", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := w.Acquire(ctx, subject()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("exceeded+record", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s := subject()
				if _, err := w.Exceeded(ctx, s); err != nil {
					b.Error(err)
					return
				}
				if err := w.Record(ctx, s); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
