package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// waitForTargets implements Postal's container entrypoint contract:
// WAIT_FOR_TARGETS is a space-separated list of host:port (TCP connect) or
// http(s):// URLs (a 2xx answer); each must answer within WAIT_FOR_TIMEOUT
// seconds (default 30) in all, or startup fails naming the target.
func waitForTargets(ctx context.Context, targets, timeout string, poll time.Duration) error {
	fields := strings.Fields(targets)
	if len(fields) == 0 {
		return nil
	}
	limit := 30 * time.Second
	if timeout != "" {
		secs, err := strconv.ParseFloat(timeout, 64)
		if err != nil || secs <= 0 {
			return &usageError{fmt.Errorf("WAIT_FOR_TIMEOUT: %q is not a positive number of seconds", timeout)}
		}
		limit = time.Duration(secs * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, target := range fields {
		// lastErr is the last failure of a probe that ran to completion: the
		// reason worth reporting (not the deadline that cut the final probe).
		var lastErr error
		for {
			err := probe(ctx, client, target)
			if err == nil {
				break
			}
			if ctx.Err() == nil || lastErr == nil {
				lastErr = err
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("WAIT_FOR_TARGETS: %s did not answer within %s: %w", target, limit, lastErr)
				}
				return ctx.Err()
			case <-time.After(poll):
			}
		}
	}
	return nil
}

func probe(ctx context.Context, client *http.Client, target string) error {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return fmt.Errorf("not host:port or an http(s) URL: %w", err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	return conn.Close()
}
