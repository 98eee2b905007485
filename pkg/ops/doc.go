// Package ops is a service's operations HTTP server: liveness, readiness,
// Prometheus metrics and, optionally, pprof. It runs as a
// [service.Companion], so it starts when [service.Service.Run] starts and
// stops when Run returns.
//
//	svc := service.New(b, ops.With(ops.Config{Addr: ":9090"}))
//
// In a configuration file the http section does the same (see package
// config): http: {addr: ":9090"}. It is off by default.
//
// # Endpoints
//
//   - GET /healthz: 200 while the process serves HTTP at all (liveness). It
//     says nothing of the broker: restarting a process because its broker
//     is down does not bring the broker back.
//   - GET /readyz: 200 when the service is ready to take work, 503 when not,
//     with a JSON body whose "reason" says why (readiness). Ready means Run
//     subscribed every handler and has not begun shutting down, every
//     subscription is healthy per [service.Service.Health] (its failure path
//     is not failing), the broker passes its [github.com/switchyard-go/switchyard/pkg/broker.HealthChecker] check
//     within [ReadinessConfig].BrokerTimeout, and, when
//     [ReadinessConfig].MaxBacklog is set, no subscription's backlog
//     ([github.com/switchyard-go/switchyard/pkg/broker.BacklogReader]) is above it. The body lists the broker's
//     health and every subscription's health and backlog. One reading of
//     the broker serves every request and scrape for a second.
//   - GET /metrics: Switchyard's metrics (see package metrics), the
//     broker's health and every subscription's backlog
//     (switchyard_broker_up, switchyard_backlog_messages,
//     switchyard_backlog_partition_messages) and the Go runtime's, in the
//     Prometheus text format; package otelmetrics can add its instruments
//     to [Server.Registry].
//   - /debug/pprof/: net/http/pprof, only with Config.Pprof.
//   - /admin/: the admin API (package admin), only with
//     Config.Admin.Enabled; [WithAdmin] gives it what only code can.
//
// # Shutdown
//
// When Run shuts down, /readyz turns 503 at once ("shutting down"), so a load
// balancer stops sending work while in-flight handlers finish; the server
// itself stops after Run's shutdown, waiting at most Config.ShutdownTimeout
// for open requests.
package ops
