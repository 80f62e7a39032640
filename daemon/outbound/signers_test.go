package outbound

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/postalgo/postal/daemon/dkim"
	"github.com/postalgo/postal/daemon/store"
)

// countingKeys is a KeyHolder that signs with crypto/rsa and counts the keys
// it was given.
type countingKeys struct{ n atomic.Int32 }

func (c *countingKeys) NewSigner(k *rsa.PrivateKey) (crypto.Signer, error) {
	c.n.Add(1)
	return k, nil
}

// Concurrent first messages of several domains load each key exactly once;
// a new key is loaded again; a broken key is an error for its domain only.
func TestSignerCacheLoadsEachKeyOnce(t *testing.T) {
	pem := func() string {
		k, err := dkim.GenerateKey(1024)
		if err != nil {
			t.Fatal(err)
		}
		return string(dkim.EncodePrivateKey(k))
	}
	keys := &countingKeys{}
	c := &signerCache{m: map[int64]*signerEntry{}, keys: keys, log: slog.New(slog.DiscardHandler)}
	domains := []*store.Domain{
		{ID: 1, Name: "a.test", DKIMPrivateKey: pem(), DKIMIdentifierString: "AAAAAA"},
		{ID: 2, Name: "b.test", DKIMPrivateKey: pem(), DKIMIdentifierString: "BBBBBB"},
		{ID: 3, Name: "c.test", DKIMPrivateKey: pem(), DKIMIdentifierString: "CCCCCC"},
		{ID: 4, Name: "broken.test", DKIMPrivateKey: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", DKIMIdentifierString: "DDDDDD"},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 10 {
		for _, d := range domains {
			wg.Go(func() {
				s, err := c.get(d, "postal")
				switch {
				case d.ID == 4 && (err == nil || !strings.Contains(err.Error(), "dkim key of domain broken.test")):
					errs <- fmt.Errorf("broken key: signer %v, err %v", s, err)
				case d.ID != 4 && (err != nil || s.Domain() != d.Name || s.Selector() != "postal-"+d.DKIMIdentifierString):
					errs <- fmt.Errorf("%s: signer %+v, err %v", d.Name, s, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := keys.n.Load(); n != 3 {
		t.Fatalf("keys loaded %d times for 3 good domains asked 10 times each, want 3", n)
	}
	rotated := *domains[0]
	rotated.DKIMPrivateKey = pem()
	if _, err := c.get(&rotated, "postal"); err != nil {
		t.Fatal(err)
	}
	if n := keys.n.Load(); n != 4 {
		t.Fatalf("after a key change: loaded %d times, want 4", n)
	}
}
