package webhookworker_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/libcrypto"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhook"
	"github.com/postalgo/postal/daemon/webhookworker"
)

// benchDeliveries measures webhook deliveries per second to a local
// receiver (real Redis, SQLite, signed HTTP over loopback), from the
// worker's start until the receiver has had b.N requests. With hanging,
// 200 requests for a receiver that never answers are queued ahead of them.
// Signatures go through libcrypto when useLibcrypto and it loads. Besides
// the rate it reports the process's CPU per delivery (cpu-µs/op).
func benchDeliveries(b *testing.B, hanging, useLibcrypto bool) {
	s := storetest.SQLite(b)
	e := newEnv(b, s)
	var got atomic.Int64
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ok.Close()
	if hanging {
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer hang.Close()
		defer close(release)
		e.add(hang.URL+"/hang", 200)
	}
	e.add(ok.URL+"/ok", b.N)
	signer := webhook.Signer(signingKey(b))
	if lib, err := libcrypto.Open(); err == nil && useLibcrypto { // as the worker role does
		ls, err := lib.NewSigner(signingKey(b).Private())
		if err != nil {
			b.Fatal(err)
		}
		signer = webhook.NewCryptoSigner(ls, signingKey(b).KID(), signingKey(b))
	} else if useLibcrypto {
		b.Logf("signing with crypto/rsa: %v", err)
	}
	client, err := webhook.NewClient(webhook.ClientOptions{Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	e.start(webhookworker.Options{Sender: client})
	waitFor(b, 10*time.Minute, "every healthy request", func() bool { return got.Load() >= int64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
	// CPU of the whole process (worker, receiver, Redis and SQL clients),
	// steadier than wall time on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkDeliveries(b *testing.B)                      { benchDeliveries(b, false, true) }
func BenchmarkDeliveriesBesideHangingReceiver(b *testing.B) { benchDeliveries(b, true, true) }

// BenchmarkDeliveriesCryptoRSA signs with Go's crypto/rsa
// (worker.dkim_openssl: false).
func BenchmarkDeliveriesCryptoRSA(b *testing.B) { benchDeliveries(b, false, false) }
