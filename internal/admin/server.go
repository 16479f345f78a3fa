// Package admin serves regate's admin API (README, Admin API): health and status,
// OPA-compatible runtime policy and data, attempt registration, the
// decision log and Prometheus metrics, on a unix socket or on a loopback TCP
// listener that requires a bearer token.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/status"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
)

// Engine is what the admin API uses of the policy engine.
type Engine interface {
	Manager() *plugins.Manager
	Store() storage.Store
	Status() engine.Status
	OPAStatus() *status.UpdateRequestV1
	Fresh() error
	LogQuery(context.Context, *server.Info) error
	Recent(filter func(*engine.Event) bool, limit int) []*engine.Event
	Subscribe(buf int, filter func(*engine.Event) bool) (<-chan *engine.Event, func())
}

var _ Engine = (*engine.Engine)(nil)

// DefaultSweepInterval is how often expired attempts are removed.
const DefaultSweepInterval = 30 * time.Second

// Config configures a Server.
type Config struct {
	// Engine decides; its store and OPA manager back /v1/policies and
	// /v1/data. It must be started before Server.Start.
	Engine Engine
	// Attempts is the registry the proxy authenticates against.
	Attempts *attempt.Registry
	// BoundAttempt is set under `regate run`: the listeners belong to that
	// one attempt, so attempts cannot be added or removed.
	BoundAttempt string
	// Listeners are the proxy's open listeners, by name, for /v1/status.
	Listeners map[string]string
	// ChildProxies are the listeners the environment of a new attempt
	// points at.
	ChildProxies []childenv.Listener
	// AttemptListeners opens the listeners of attempts registered with
	// "listeners": true; nil refuses such attempts.
	AttemptListeners AttemptListeners
	// Secrets grants attempts that ask for secrets ("secrets": [NAME…])
	// placeholders of their own; nil refuses such attempts.
	Secrets AttemptSecrets
	// ChildTrust are the variables that make an attempt's child trust the
	// HTTPS inspection CA (NAME=VALUE), added to the env of each new
	// attempt; nil when inspection is off.
	ChildTrust []string
	// Self is the regate binary, for GIT_SSH_COMMAND in attempts' env.
	Self string
	// Token is required as `Authorization: Bearer <token>` on every request
	// over TCP; without one, Serve refuses TCP listeners. Requests over a
	// unix socket need none: the socket's file mode is the access control.
	Token string
	// Ready reports whether the proxy listeners are serving; nil: always.
	Ready func() error
	// Gatherer is what /metrics exposes; Registerer receives the admin
	// API's own metrics. Both may be nil.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	// Version is reported by /v1/status.
	Version string
	// SweepInterval is how often expired attempts are removed.
	SweepInterval time.Duration
	Logger        *slog.Logger
}

// Server is the admin API. Create it with New, Start it, then Serve
// listeners; Shutdown ends it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	opa     *server.Server
	limits  *opaLimits // request body limits of OPA's routes
	reqID   atomic.Uint64
	srv     *http.Server
	started time.Time
	ctx     context.Context // canceled by Shutdown: ends decision streams
	cancel  context.CancelFunc
	sweep   sync.WaitGroup

	mu    sync.Mutex
	addrs []string
	once  sync.Once

	// attemptsMu orders the registration and removal of attempts with
	// their listeners, so that a removal never leaves listeners open.
	attemptsMu sync.Mutex
}

// New validates cfg and builds a server. It opens and starts nothing; it
// registers the admin API's metrics.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("creating admin API: nil engine")
	}
	if cfg.Attempts == nil {
		return nil, errors.New("creating admin API: nil attempt registry")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "admin")}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	m, err := newMetrics(cfg.Registerer, cfg.Attempts)
	if err != nil {
		return nil, fmt.Errorf("creating admin API: %w", err)
	}
	s.m = m
	s.srv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext:       connContext,
	}
	return s, nil
}

// Start mounts OPA's REST server on the engine's store and manager and
// starts sweeping expired attempts until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.Engine.Manager() == nil {
		return errors.New("starting admin API: the engine is not started")
	}
	mgr := s.cfg.Engine.Manager()
	limits, err := decodingLimits(mgr)
	if err != nil {
		return fmt.Errorf("starting OPA's REST API: %w", err)
	}
	// As `opa run --server` builds its server: every evaluation is
	// decision-logged with an id, and nd_builtin_cache is honoured.
	opa, err := server.New().
		WithStore(s.cfg.Engine.Store()).
		WithManager(mgr).
		WithCompilerErrorLimit(10).
		WithDecisionIDFactory(uuid.NewString).
		WithDecisionLoggerWithErr(s.cfg.Engine.LogQuery).
		WithNDBCacheEnabled(mgr.GetConfig().NDBuiltinCacheEnabled()).
		Init(ctx)
	if err != nil {
		return fmt.Errorf("starting OPA's REST API: %w", err)
	}
	s.mu.Lock()
	s.opa = opa
	s.limits = limits
	s.started = time.Now()
	s.mu.Unlock()
	s.sweep.Add(1)
	go s.sweepAttempts()
	return nil
}

// Serve answers on l until Shutdown; it returns http.ErrServerClosed then.
func (s *Server) Serve(l net.Listener) error {
	if _, unix := l.Addr().(*net.UnixAddr); !unix && s.cfg.Token == "" {
		return errors.New("serving admin API: a TCP listener needs a bearer token")
	}
	s.mu.Lock()
	if s.opa == nil {
		s.mu.Unlock()
		return errors.New("serving admin API: not started")
	}
	s.addrs = append(s.addrs, listenerAddr(l))
	s.mu.Unlock()
	return s.srv.Serve(l)
}

// Shutdown ends the decision streams, lets other requests finish until ctx
// is done, and stops the sweeper and OPA's REST server.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.cancel()
		if e := s.srv.Shutdown(ctx); e != nil {
			_ = s.srv.Close()
			err = fmt.Errorf("shutting down admin API: %w", e)
		}
		s.sweep.Wait()
		s.mu.Lock()
		opa := s.opa
		s.mu.Unlock()
		if opa != nil {
			_ = opa.Shutdown(ctx) // takes its store trigger back; it has no listeners
		}
	})
	return err
}

// Addrs are the addresses served, as "unix:PATH" or HOST:PORT.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

func listenerAddr(l net.Listener) string {
	if a, ok := l.Addr().(*net.UnixAddr); ok {
		return "unix:" + a.Name
	}
	return l.Addr().String()
}

// sweepAttempts removes expired attempts every SweepInterval (the proxy
// already refuses them; this frees them).
func (s *Server) sweepAttempts() {
	defer s.sweep.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.attemptsMu.Lock()
			gone := s.cfg.Attempts.Sweep(now)
			for _, id := range gone {
				s.release(id)
			}
			s.attemptsMu.Unlock()
			if len(gone) > 0 {
				s.m.expired.Add(float64(len(gone)))
				s.log.Debug("expired attempts removed", "count", len(gone))
			}
		}
	}
}
