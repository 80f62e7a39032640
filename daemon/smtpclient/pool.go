package smtpclient

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// hostPool holds one destination key's connections. sem holds one token per
// busy connection, so busy <= MaxConnsPerHost; a new connection is dialled
// only when no idle one is left, which keeps open = busy + idle within the
// cap too. Every field but sem and key is guarded by Client.mu.
type hostPool struct {
	key  string
	sem  chan struct{}
	idle []*conn // most recently used last
	open int
	busy int
	// refs counts Send calls holding this pool (waiting or busy); the pool
	// is forgotten only when refs and open are both zero.
	refs      int
	busyGauge prometheus.Gauge
}

// pool returns the pool for key, creating it, and takes a reference that the
// caller gives back with unref. It fails once the client is closed.
func (c *Client) pool(key string) (*hostPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	hp := c.pools[key]
	if hp == nil {
		hp = &hostPool{
			key:       key,
			sem:       make(chan struct{}, c.o.MaxConnsPerHost),
			busyGauge: c.m.busy.WithLabelValues(key),
		}
		c.pools[key] = hp
	}
	hp.refs++
	return hp, nil
}

// unref gives back a reference taken by pool.
func (c *Client) unref(hp *hostPool) {
	c.mu.Lock()
	hp.refs--
	c.forgetLocked(hp.key, hp)
	c.mu.Unlock()
}

// forgetLocked drops hp from the map when nothing uses it any more.
func (c *Client) forgetLocked(key string, hp *hostPool) {
	if hp.refs == 0 && hp.open == 0 && c.pools[key] == hp {
		delete(c.pools, key)
		c.m.busy.DeleteLabelValues(key)
	}
}

// acquire waits for a busy slot in hp, or for ctx to end.
func acquire(ctx context.Context, hp *hostPool) error {
	select {
	case hp.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case hp.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// take returns the most recently used idle connection, or nil after
// reserving room for a new one (which the caller must dial, then hand to
// release, or give back with cancelDial). The caller holds a slot. It fails
// with ErrClosed once the client is closed.
func (c *Client) take(hp *hostPool) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	hp.busy++
	hp.busyGauge.Set(float64(hp.busy))
	if n := len(hp.idle); n > 0 {
		cn := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		return cn, nil
	}
	hp.open++
	return nil, nil
}

// cancelDial gives back the reservation of a take that returned nil when the
// dial failed.
func (c *Client) cancelDial(hp *hostPool) {
	c.mu.Lock()
	hp.open--
	hp.busy--
	hp.busyGauge.Set(float64(hp.busy))
	c.mu.Unlock()
}

// release returns cn to hp's idle list when it is healthy, the client is open
// and it has room for more messages; otherwise it closes cn (with QUIT when
// the session is still in step). The caller still holds its slot.
func (c *Client) release(hp *hostPool, cn *conn) {
	c.mu.Lock()
	hp.busy--
	hp.busyGauge.Set(float64(hp.busy))
	if !cn.broken && !c.closed && cn.sent < c.o.MaxMessagesPerConn {
		cn.lastUsed = c.o.Now()
		hp.idle = append(hp.idle, cn)
		c.mu.Unlock()
		return
	}
	hp.open--
	c.mu.Unlock()
	if err := cn.quit(); err != nil {
		c.log.Debug("closing connection", "remote", cn.remote, "err", err)
	}
}
