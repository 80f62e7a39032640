//go:build cgo && linux

package libcrypto

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

// The few libcrypto entry points used, resolved with dlsym. Their signatures
// are the same in OpenSSL 1.1 and 3.x.
typedef struct {
	void *(*d2i_rsa)(void **, const unsigned char **, long);
	int (*rsa_sign)(int, const unsigned char *, unsigned int, unsigned char *, unsigned int *, void *);
	void (*rsa_free)(void *);
	int (*rsa_size)(const void *);
	unsigned long (*err_get)(void);
	void (*err_string)(unsigned long, char *, size_t);
	void (*err_clear)(void);
	const char *(*version)(int);
} postal_libcrypto;

static int postal_libcrypto_open(const char *name, postal_libcrypto *lc) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		return 0;
	}
	lc->d2i_rsa = dlsym(h, "d2i_RSAPrivateKey");
	lc->rsa_sign = dlsym(h, "RSA_sign");
	lc->rsa_free = dlsym(h, "RSA_free");
	lc->rsa_size = dlsym(h, "RSA_size");
	lc->err_get = dlsym(h, "ERR_get_error");
	lc->err_string = dlsym(h, "ERR_error_string_n");
	lc->err_clear = dlsym(h, "ERR_clear_error");
	lc->version = dlsym(h, "OpenSSL_version");
	if (!lc->d2i_rsa || !lc->rsa_sign || !lc->rsa_free || !lc->rsa_size ||
	    !lc->err_get || !lc->err_string || !lc->err_clear || !lc->version) {
		dlclose(h);
		return 0;
	}
	return 1;
}

static const char *postal_libcrypto_version(postal_libcrypto *lc) {
	return lc->version(0);
}

// The error queue is per thread, so every call that can fail reads its error
// in the same C call (a goroutine may change threads between cgo calls).
static void postal_libcrypto_err(postal_libcrypto *lc, char *buf, size_t n) {
	unsigned long e = lc->err_get();
	if (e == 0) {
		strncpy(buf, "unknown error", n - 1);
		buf[n - 1] = 0;
	} else {
		lc->err_string(e, buf, n);
	}
	lc->err_clear();
}

static void *postal_libcrypto_parse(postal_libcrypto *lc, const unsigned char *der, long n, char *errbuf, size_t errn) {
	const unsigned char *p = der;
	lc->err_clear();
	void *k = lc->d2i_rsa(NULL, &p, n);
	if (k == NULL) {
		postal_libcrypto_err(lc, errbuf, errn);
	}
	return k;
}

static int postal_libcrypto_size(postal_libcrypto *lc, void *k) {
	return lc->rsa_size(k);
}

static int postal_libcrypto_sign(postal_libcrypto *lc, int nid, const unsigned char *m, unsigned int mlen,
                                 unsigned char *sig, unsigned int *siglen, void *k, char *errbuf, size_t errn) {
	lc->err_clear();
	int ok = lc->rsa_sign(nid, m, mlen, sig, siglen, k);
	if (ok != 1) {
		postal_libcrypto_err(lc, errbuf, errn);
	}
	return ok;
}

// postal_libcrypto_lower_priority raises the calling thread's nice value
// by nice (to at most 19); best effort: a refusal leaves it as it was.
static void postal_libcrypto_lower_priority(int nice) {
	id_t tid = (id_t)syscall(SYS_gettid);
	errno = 0;
	int cur = getpriority(PRIO_PROCESS, tid);
	if (errno == 0) {
		int want = cur + nice;
		if (want > 19) {
			want = 19;
		}
		setpriority(PRIO_PROCESS, tid, want);
	}
}

static void postal_libcrypto_free(postal_libcrypto *lc, void *k) {
	lc->rsa_free(k);
}
*/
import "C"

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// names are tried in order; the unversioned name is last because it exists
// only where the development package is installed.
var names = []string{"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"}

// Library is a loaded libcrypto. It is safe for concurrent use and is never
// unloaded.
type Library struct {
	lc      *C.postal_libcrypto // C memory: referenced from every key
	version string
}

// Open loads the system's libcrypto. It returns an error wrapping
// ErrUnavailable when none can be loaded.
func Open() (*Library, error) {
	lc := (*C.postal_libcrypto)(C.calloc(1, C.size_t(unsafe.Sizeof(C.postal_libcrypto{}))))
	for _, name := range names {
		cname := C.CString(name)
		ok := C.postal_libcrypto_open(cname, lc)
		C.free(unsafe.Pointer(cname))
		if ok == 1 {
			return &Library{lc: lc, version: C.GoString(C.postal_libcrypto_version(lc))}, nil
		}
	}
	C.free(unsafe.Pointer(lc))
	return nil, fmt.Errorf("%w: none of %v could be loaded", ErrUnavailable, names)
}

// Version returns the library's own version text, such as "OpenSSL 3.0.19
// 27 Jan 2026".
func (l *Library) Version() string { return l.version }

// NewSigner returns a crypto.Signer that signs with key inside libcrypto. It
// makes PKCS #1 v1.5 signatures over SHA-1, SHA-256, SHA-384 or SHA-512
// digests, the same bytes rsa.SignPKCS1v15 makes, which it checks once
// before returning (so loading a key costs about one crypto/rsa signature).
// The libcrypto copy of the key is freed when the signer is garbage
// collected.
func (l *Library) NewSigner(key *rsa.PrivateKey) (crypto.Signer, error) {
	return l.newSigner(key, 0)
}

// NewBackgroundSigner is NewSigner for work that must yield the CPU to the
// rest of the process: each signature is made on one of a few long-lived
// signing threads whose nice value is raised by BackgroundNice (best
// effort), so under load the kernel runs the process's other threads first
// (niceThreads).
func (l *Library) NewBackgroundSigner(key *rsa.PrivateKey) (crypto.Signer, error) {
	return l.newSigner(key, BackgroundNice)
}

// BackgroundNice is how much NewBackgroundSigner raises a signing thread's
// nice value (capped at 19).
const BackgroundNice = 10

func (l *Library) newSigner(key *rsa.PrivateKey, nice int) (crypto.Signer, error) {
	if key == nil {
		return nil, errors.New("libcrypto: nil key")
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	var errbuf [256]C.char
	k := C.postal_libcrypto_parse(l.lc, (*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)), &errbuf[0], C.size_t(len(errbuf)))
	clear(der)
	if k == nil {
		return nil, fmt.Errorf("libcrypto: load RSA key: %s", C.GoString(&errbuf[0]))
	}
	s := &signer{lc: l.lc, key: k, size: int(C.postal_libcrypto_size(l.lc, k)), pub: &key.PublicKey, nice: nice}
	lc := l.lc
	runtime.AddCleanup(s, func(k unsafe.Pointer) { C.postal_libcrypto_free(lc, k) }, k)
	if err := selfTest(s, key); err != nil {
		return nil, err
	}
	return s, nil
}

// selfTest signs a fixed digest with s and with crypto/rsa: PKCS #1 v1.5 is
// deterministic, so the two must be the same bytes. It catches a libcrypto
// that refuses the key or the operation (a FIPS policy, say) or misbehaves,
// once per key, before any message is signed with it.
func selfTest(s crypto.Signer, key *rsa.PrivateKey) error {
	digest := sha256.Sum256([]byte("postal libcrypto self-test"))
	got, err := s.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return fmt.Errorf("libcrypto: self-test: %w", err)
	}
	want, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return fmt.Errorf("libcrypto: self-test: crypto/rsa: %w", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("libcrypto: self-test: signature differs from crypto/rsa's")
	}
	return nil
}

type signer struct {
	lc   *C.postal_libcrypto
	key  unsafe.Pointer // RSA*
	size int
	pub  *rsa.PublicKey
	// nice, when not 0, signs on one of the process's background signing
	// threads, whose priority is this much lower (niceThreads).
	nice int
}

func (s *signer) Public() crypto.PublicKey { return s.pub }

// nid returns OpenSSL's object identifier of a supported digest.
func nid(h crypto.Hash) (C.int, bool) {
	switch h {
	case crypto.SHA1:
		return 64, true
	case crypto.SHA256:
		return 672, true
	case crypto.SHA384:
		return 673, true
	case crypto.SHA512:
		return 674, true
	}
	return 0, false
}

// Sign signs digest, which must be the opts.HashFunc() digest of the message.
// rand is unused: the signature is deterministic and libcrypto blinds the
// private-key operation itself.
func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, errors.New("libcrypto: RSA-PSS is not supported")
	}
	h := opts.HashFunc()
	id, ok := nid(h)
	if !ok {
		return nil, fmt.Errorf("libcrypto: unsupported hash %v", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("libcrypto: %d-byte digest for %v", len(digest), h)
	}
	sig := make([]byte, s.size)
	var n C.uint
	var errbuf [256]C.char
	var r C.int
	sign := func() {
		r = C.postal_libcrypto_sign(s.lc, id, (*C.uchar)(unsafe.Pointer(&digest[0])), C.uint(len(digest)),
			(*C.uchar)(unsafe.Pointer(&sig[0])), &n, s.key, &errbuf[0], C.size_t(len(errbuf)))
	}
	if s.nice != 0 {
		niceThreads(s.nice).run(sign)
	} else {
		sign()
	}
	runtime.KeepAlive(s)
	if r != 1 {
		return nil, fmt.Errorf("libcrypto: sign: %s", C.GoString(&errbuf[0]))
	}
	return sig[:n], nil
}

// A nicePool is a set of OS threads whose nice value is raised, each running
// one goroutine locked to it for the life of the process, that run
// background signatures. Go never schedules another goroutine on a locked
// thread, and a thread the runtime needs while on one is created by its
// template thread, not cloned from the locked one, so no goroutine but these
// ever runs with the lowered priority. Before, each background signature
// made a C thread of its own for the purpose: some 100 µs of thread creation
// and teardown per 270 µs signature.
type nicePool struct {
	jobs chan niceJob
}

type niceJob struct {
	fn   func()
	done chan struct{}
}

var (
	nicePoolsMu sync.Mutex
	nicePools   = map[int]*nicePool{}
)

// niceThreads returns the pool of threads lowered by nice, starting it (one
// thread per CPU) on first use.
func niceThreads(nice int) *nicePool {
	nicePoolsMu.Lock()
	defer nicePoolsMu.Unlock()
	if p, ok := nicePools[nice]; ok {
		return p
	}
	p := &nicePool{jobs: make(chan niceJob)}
	for range runtime.NumCPU() {
		go p.serve(nice)
	}
	nicePools[nice] = p
	return p
}

// serve runs on a thread of its own, never unlocked: the thread keeps its
// lowered priority and would end with the goroutine.
func (p *nicePool) serve(nice int) {
	runtime.LockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		// The process's main thread, whose nice value is the one ps and top
		// show for the process: leave it alone. A goroutine that ends while
		// locked to it parks the thread for good (Go never exits it), and
		// another goroutine takes its place on another thread.
		go p.serve(nice)
		return
	}
	C.postal_libcrypto_lower_priority(C.int(nice))
	for j := range p.jobs {
		j.fn()
		close(j.done)
	}
}

// run runs fn on one of the pool's threads and waits for it.
func (p *nicePool) run(fn func()) {
	done := make(chan struct{})
	p.jobs <- niceJob{fn: fn, done: done}
	<-done
}
