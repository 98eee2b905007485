package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Server is the operations HTTP server of one service. Create it with
// [New] and give [Server.Option] to [service.New], or use [With].
type Server struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	recorder *metrics.Prometheus
	handler  http.Handler
	prober   *prober // the broker's health and backlog, for /readyz and /metrics
	admin    []admin.Option

	svc     atomic.Pointer[service.Service] // of the current Run
	stopped atomic.Bool                     // Run is returning

	mu     sync.Mutex
	srv    *http.Server
	ln     net.Listener
	done   chan struct{} // closed when Serve returned
	failed chan error    // see Failed
}

// Option configures a [Server] with what only code can give.
type Option func(*Server)

// WithLogger sets the server's logger; nil discards.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithRegistry has the server register Switchyard's metrics with reg and
// serve everything reg gathers on /metrics, so that the service's own
// metrics appear beside them. Default: a registry of the server's own,
// with the Go runtime and process collectors.
func WithRegistry(reg *prometheus.Registry) Option { return func(s *Server) { s.registry = reg } }

// WithAdmin gives the admin API (served under /admin/ when
// Config.Admin.Enabled) what only code can: its AsyncAPI settings, a
// logger. The server's logger is the default.
func WithAdmin(opts ...admin.Option) Option {
	return func(s *Server) { s.admin = append(s.admin, opts...) }
}

// New returns a server for cfg, which must set Addr. It registers
// Switchyard's metrics (see [metrics.NewPrometheus]).
func New(cfg Config, opts ...Option) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("ops: addr is empty, want host:port such as :9090")
	}
	if err := cfg.Validate("ops"); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg.withDefaults()}
	for _, o := range opts {
		o(s)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	rec, err := metrics.NewPrometheus(s.registry)
	if err != nil {
		return nil, fmt.Errorf("ops: register metrics: %w", err)
	}
	s.prober = &prober{timeout: s.cfg.Readiness.BrokerTimeout}
	if err := s.registry.Register(brokerCollector{s}); err != nil {
		return nil, fmt.Errorf("ops: register broker metrics: %w", err)
	}
	s.recorder = rec
	s.handler = s.routes()
	return s, nil
}

// With returns the service option that runs a server for cfg beside the
// service and feeds its /metrics; an invalid cfg makes Run fail with the
// reason.
func With(cfg Config, opts ...Option) service.Option {
	s, err := New(cfg, opts...)
	if err != nil {
		return service.WithStartError(err)
	}
	return s.Option()
}

var _ service.FailingCompanion = (*Server)(nil)

// Option is the service option that runs s beside the service (see
// [service.Companion]) and records the service's metrics for /metrics.
func (s *Server) Option() service.Option {
	return func(svc *service.Service) {
		service.WithRecorder(s.recorder)(svc)
		service.WithCompanion(s)(svc)
	}
}

// Registry is the registry /metrics serves; register the service's own
// metrics with it.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Addr is the address the server listens on while the service runs
// (with the port picked when Config.Addr asked for port 0), or "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.logger}}))
	if s.cfg.Admin.Enabled {
		opts := append([]admin.Option{admin.WithLogger(s.logger)}, s.admin...)
		mux.Handle(admin.Prefix, admin.New(s.cfg.Admin, s.svc.Load, opts...))
	}
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Start listens and serves; the service calls it when Run starts.
func (s *Server) Start(ctx context.Context, svc *service.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("ops: the server already serves a running service")
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("ops: listen on %s: %w", s.cfg.Addr, err)
	}
	s.svc.Store(svc)
	s.stopped.Store(false)
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	done, failed := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("operations HTTP server failed", slog.Any("error", err))
			failed <- fmt.Errorf("ops: the operations HTTP server on %s stopped serving: %w", ln.Addr(), err)
		}
	}()
	s.srv, s.ln, s.done, s.failed = srv, ln, done, failed
	s.logger.Info("operations HTTP server listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// Stop stops the server, waiting at most Config.ShutdownTimeout for open
// requests, then closing their connections; the service calls it when Run
// returns.
func (s *Server) Stop(ctx context.Context) error {
	s.stopped.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("ops: shutdown: %w", err), s.srv.Close())
	}
	<-s.done
	s.srv, s.ln, s.done, s.failed = nil, nil, nil, nil
	return err
}

// Failed yields the error of a server that stopped serving while the
// service ran: an orchestrator probing /readyz would see the process as
// dead, so the service shuts down with it rather than run on unobserved.
func (s *Server) Failed() <-chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// slogPrinter adapts a logger to promhttp's error log.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error("metrics: " + fmt.Sprint(v...)) }
