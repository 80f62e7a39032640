// Package webserver is the web-server role. In this stage it serves
// /health and a bare /ready status on the web port (no check details and no
// /metrics: the port faces the internet; details are on the health port)
// and the signing key's public JWKS at /.well-known/jwks.json (what webhook
// receivers use to verify X-Postal-Signature-256). The HTTP API v1 and
// open/click tracking mount on the same mux when their issues land.
package webserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options configures the web server.
type Options struct {
	// Listener, when set, is served; otherwise Addr is listened on.
	Listener net.Listener
	Addr     string
	// Health registers the public /health and /ready on a mux
	// (health.Monitor.RegisterPublic: status only, no details or metrics).
	Health interface{ RegisterPublic(mux *http.ServeMux) }
	// JWKS is the signing key's public key set (JSON).
	JWKS []byte
	Log  *slog.Logger
	// Grace bounds how long in-flight requests may take after ctx ends (default 10s).
	Grace time.Duration
	// API, when set, mounts the HTTP API v1 (daemon/api) on the mux.
	API interface{ Register(mux *http.ServeMux) }
	// Tracking, when set, serves open and click tracking requests (those
	// its Wrap recognises, daemon/tracker) ahead of every other route.
	Tracking interface {
		Wrap(next http.Handler) http.Handler
	}
}

// Server is the web-server role.
type Server struct {
	o   Options
	ln  net.Listener
	srv *http.Server
}

// New binds the listener and builds the routes.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	ln := o.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", o.Addr)
		if err != nil {
			return nil, fmt.Errorf("web-server: listen on %s: %w", o.Addr, err)
		}
	}
	mux := http.NewServeMux()
	if o.Health != nil {
		o.Health.RegisterPublic(mux)
	}
	if o.API != nil {
		o.API.Register(mux)
	}
	jwks := o.JWKS
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(jwks)
	})
	var handler http.Handler = mux
	if o.Tracking != nil {
		handler = o.Tracking.Wrap(mux)
	}
	s := &Server{o: o, ln: ln, srv: &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}}
	return s, nil
}

// Addr is the address being served.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then lets in-flight requests finish within
// the grace period.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.o.Log.Info("web-server listening", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("web-server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.Grace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("web-server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web-server: %w", err)
	}
	return nil
}
