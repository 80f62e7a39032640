package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/postalgo/postal/daemon/store"
)

// maxIdempotencyKey caps the Idempotency-Key header.
const maxIdempotencyKey = 255

// idempotent runs a send (fn) under the request's Idempotency-Key, if it
// has one. The key is reserved in SQL before anything is stored, and the
// submission marks it done in the same transaction that stores the
// messages, so a retry of a request that succeeded (even if its answer
// was lost) replays the stored messages and creates nothing, a retry
// while the first is still running is told to wait, and a retry of a
// request that stored nothing runs again.
func (rq *request) idempotent(fn func(idemID int64) (any, error)) (any, error) {
	key := rq.r.Header.Get("Idempotency-Key")
	if key == "" {
		return fn(0)
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		return nil, paramErrorf("The Idempotency-Key header must be 1 to %d printable ASCII characters", maxIdempotencyKey)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, rq.r.Body, rq.h.o.MaxBodyBytes))
	if err != nil {
		return nil, bodyError(err, rq.h.o.MaxBodyBytes)
	}
	rq.r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.New()
	for _, part := range []string{rq.ep, rq.r.URL.RawQuery, rq.r.Header.Get("Content-Type")} {
		sum.Write([]byte(part))
		sum.Write([]byte{0})
	}
	sum.Write(body)
	hash := hex.EncodeToString(sum.Sum(nil))

	ctx := rq.r.Context()
	st := rq.h.o.Store
	rec, owned, err := st.ReserveIdempotencyKey(ctx, rq.auth.Server.ID, key, rq.ep, hash)
	if errors.Is(err, store.ErrConflict) {
		return nil, errIdemInProgress
	}
	if err != nil {
		return nil, err
	}
	if !owned {
		switch {
		case rec.RequestHash != hash || rec.Endpoint != rq.ep:
			return nil, errIdemReused
		case !rec.Done:
			return nil, errIdemInProgress
		}
		return rq.replay(rec)
	}
	data, err := fn(rec.ID)
	if err != nil {
		// Nothing was stored (a stored submission returns success): let a
		// retry run again. The release must not depend on the client
		// still waiting.
		if rerr := st.ReleaseIdempotencyKey(context.WithoutCancel(ctx), rec.ID); rerr != nil {
			rq.h.o.Log.Warn("releasing idempotency key failed", "server", rq.auth.Server.ID, "err", rerr)
		}
		return nil, err
	}
	return data, nil
}

// replay rebuilds a finished request's answer from the messages it stored.
func (rq *request) replay(rec *store.Idempotency) (any, error) {
	if rec.RawMessageID == 0 {
		return sendResult(nil, nil), nil
	}
	msgs, err := rq.h.o.Store.MessagesOfRaw(rq.r.Context(), rec.RawMessageID)
	if err != nil {
		return nil, fmt.Errorf("replay idempotent request: %w", err)
	}
	var msgID any
	accepted := make([]store.Accepted, 0, len(msgs))
	for _, m := range msgs {
		if m.ServerID != rq.auth.Server.ID {
			continue
		}
		if msgID == nil && m.MessageID != "" {
			msgID = m.MessageID
		}
		accepted = append(accepted, store.Accepted{MessageID: m.ID, Token: m.Token, RcptTo: m.RcptTo})
	}
	return sendResult(msgID, accepted), nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
