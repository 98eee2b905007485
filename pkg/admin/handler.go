package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pkg/asyncapi"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Prefix is the path the API is served under.
const Prefix = "/admin/"

// Option configures the handler with what only code can give.
type Option func(*handler)

// WithAsyncAPI sets what /admin/asyncapi.json's document says beyond the
// handlers (title, version, servers, bindings); default a document with
// asyncapi's defaults.
func WithAsyncAPI(cfg asyncapi.Config) Option { return func(h *handler) { h.asyncapi = cfg } }

// WithLogger sets the logger of the operations the API runs; nil
// discards.
func WithLogger(l *slog.Logger) Option { return func(h *handler) { h.logger = l } }

type handler struct {
	cfg      Config
	svc      func() *service.Service
	asyncapi asyncapi.Config
	logger   *slog.Logger
	mux      *http.ServeMux
}

// New returns the admin API for cfg. svc returns the running service, or
// nil while none runs (the API then answers 503). Routes are under
// [Prefix]; mount the handler there without stripping it.
func New(cfg Config, svc func() *service.Service, opts ...Option) http.Handler {
	h := &handler{cfg: cfg, svc: svc}
	for _, o := range opts {
		o(h)
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /admin/handlers", h.read(h.handlers))
	m.HandleFunc("GET /admin/subscriptions", h.read(h.subscriptions))
	m.HandleFunc("GET /admin/stats", h.read(h.stats))
	m.HandleFunc("GET /admin/asyncapi.json", h.read(h.asyncAPI))
	m.HandleFunc("GET /admin/dlq", h.read(h.list))
	m.HandleFunc("GET /admin/dlq/letter", h.read(h.show))
	m.HandleFunc("GET /admin/dlq/parked", h.read(h.parked))
	m.HandleFunc("POST /admin/dlq/replay", h.write(h.drain(true)))
	m.HandleFunc("POST /admin/dlq/purge", h.write(h.drain(false)))
	m.HandleFunc("POST /admin/dlq/release", h.write(h.release))
	m.HandleFunc("GET /admin/flow", h.read(h.flow))
	m.HandleFunc("POST /admin/handlers/{name}/pause", h.write(h.pause(true)))
	m.HandleFunc("POST /admin/handlers/{name}/resume", h.write(h.pause(false)))
	m.HandleFunc("GET /admin/info", h.read(h.info))
	m.HandleFunc("GET /admin/graph", h.read(h.graphJSON))
	m.Handle("GET "+UIPrefix, dashboard())
	m.Handle("GET /admin/ui", http.RedirectHandler(UIPrefix, http.StatusMovedPermanently))
	m.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(w, r) {
			return
		}
		fail(w, http.StatusNotFound, fmt.Errorf("admin: no endpoint %s %s; see docs/operations.md", r.Method, r.URL.Path))
	})
	h.mux = m
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// endpoint answers one request with a value to encode as JSON or an error.
type endpoint func(r *http.Request, svc *service.Service) (any, error)

// authorized checks the bearer token: 401 without one, 403 with another.
func (h *handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard-admin"`)
		fail(w, http.StatusUnauthorized, errors.New("admin: bearer token required (Authorization: Bearer <http.admin.token>)"))
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) != 1 {
		fail(w, http.StatusForbidden, errors.New("admin: wrong token"))
		return false
	}
	return true
}

func (h *handler) read(e endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.authorized(w, r) {
			h.serve(w, r, e)
		}
	}
}

func (h *handler) write(e endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(w, r) {
			return
		}
		if !h.cfg.Write {
			fail(w, http.StatusForbidden, errors.New("admin: read-only: set http.admin.write: true to allow replay, purge, release, pause and resume"))
			return
		}
		h.serve(w, r, e)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, e endpoint) {
	svc := h.svc()
	if svc == nil {
		fail(w, http.StatusServiceUnavailable, errors.New("admin: the service is not running"))
		return
	}
	v, err := e(r, svc)
	if err != nil {
		fail(w, statusOf(err), err)
		return
	}
	if raw, ok := v.(json.RawMessage); ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
}

func fail(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{err.Error()})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, dlq.ErrInvalidOption), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, dlq.ErrNotFound), errors.Is(err, errNoHandler):
		return http.StatusNotFound
	case errors.Is(err, dlq.ErrNoBrowser), errors.Is(err, dlq.ErrNoKeys):
		return http.StatusNotImplemented
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var errBadRequest = errors.New("admin: bad request")

// errNoHandler: a pause or resume named no registered handler.
var errNoHandler = errors.New("admin: no such handler")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (h *handler) client(svc *service.Service) *dlq.Client {
	return dlq.New(svc.Broker(), dlq.WithKeys(svc))
}

// ---- what the service runs ----

// Handlers is the answer of GET /admin/handlers.
type Handlers struct {
	Broker       string                  `json:"broker"`
	Capabilities broker.Capabilities     `json:"capabilities"`
	Handlers     []service.HandlerReport `json:"handlers"`
}

func (h *handler) handlers(_ *http.Request, svc *service.Service) (any, error) {
	b := svc.Broker()
	return Handlers{Broker: b.Name(), Capabilities: b.Capabilities(), Handlers: svc.Report()}, nil
}

// Subscription is one subscription of GET /admin/subscriptions.
type Subscription struct {
	service.SubscriptionHealth
	// Backlog is what the group has not consumed yet, when the broker
	// can say (broker.BacklogReader); BacklogError says why not.
	Backlog      *broker.Backlog `json:"backlog,omitempty"`
	BacklogError string          `json:"backlog_error,omitempty"`
}

// Subscriptions is the answer of GET /admin/subscriptions.
type Subscriptions struct {
	Subscriptions []Subscription `json:"subscriptions"`
}

func (h *handler) subscriptions(r *http.Request, svc *service.Service) (any, error) {
	br, _ := svc.Broker().(broker.BacklogReader)
	out := Subscriptions{Subscriptions: []Subscription{}}
	for _, sh := range svc.Health() {
		s := Subscription{SubscriptionHealth: sh}
		if br != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			bl, err := br.Backlog(ctx, sh.Topic, sh.Group)
			cancel()
			if err != nil {
				s.BacklogError = err.Error()
			} else {
				s.Backlog = &bl
			}
		}
		out.Subscriptions = append(out.Subscriptions, s)
	}
	return out, nil
}

func (h *handler) stats(_ *http.Request, svc *service.Service) (any, error) { return svc.Stats(), nil }

func (h *handler) asyncAPI(_ *http.Request, svc *service.Service) (any, error) {
	doc, err := asyncapi.Generate(svc.Graph(), h.asyncapi)
	if err != nil {
		return nil, fmt.Errorf("admin: asyncapi: %w", err)
	}
	return json.RawMessage(doc), nil
}

// ---- dead letters ----

// topicsOf reads the dead-letter topics of a request: topic= and, for
// each group=, its default dead-letter topic.
func topicsOf(q url.Values) []string {
	var out []string
	seen := map[string]bool{}
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, t := range q["topic"] {
		add(t)
	}
	for _, g := range q["group"] {
		add(service.DeadLetterTopicFor(g))
	}
	return out
}

// filterOf reads a filter from query parameters type, reason, handler,
// failed_group, since and until (RFC 3339).
func filterOf(q url.Values) (dlq.Filter, error) {
	f := dlq.Filter{Types: q["type"], Reasons: q["reason"], Handlers: q["handler"], Groups: q["failed_group"]}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, badRequest("%s: %q, want RFC 3339 such as 2026-01-02T15:04:05Z", p.name, v)
			}
			*p.to = t
		}
	}
	return f, f.Validate()
}

// Listing is the answer of GET /admin/dlq.
type Listing struct {
	Topics []dlq.Summary `json:"topics"`
}

func (h *handler) list(r *http.Request, svc *service.Service) (any, error) {
	q := r.URL.Query()
	topics := topicsOf(q)
	if len(topics) == 0 {
		return nil, badRequest("give a dead-letter topic with topic= or a consumer group with group=")
	}
	f, err := filterOf(q)
	if err != nil {
		return nil, err
	}
	letters, _ := strconv.ParseBool(q.Get("letters"))
	c := h.client(svc)
	out := Listing{Topics: []dlq.Summary{}}
	for _, t := range topics {
		s, err := c.List(r.Context(), t, f, letters)
		if err != nil {
			return nil, err
		}
		out.Topics = append(out.Topics, s)
	}
	return out, nil
}

func oneTopic(q url.Values) (string, error) {
	ts := topicsOf(q)
	if len(ts) != 1 {
		return "", badRequest("give one dead-letter topic with topic= or one consumer group with group=, got %q", ts)
	}
	return ts[0], nil
}

func (h *handler) show(r *http.Request, svc *service.Service) (any, error) {
	q := r.URL.Query()
	topic, err := oneTopic(q)
	if err != nil {
		return nil, err
	}
	return h.client(svc).Show(r.Context(), topic, q.Get("id"))
}

// Keys is the answer of GET /admin/dlq/parked.
type Keys struct {
	Keys []ParkedKey `json:"keys"`
}

// ParkedKey is one parked key.
type ParkedKey struct {
	Group     string    `json:"group"`
	Key       string    `json:"key"`
	MessageID string    `json:"message_id"`
	Since     time.Time `json:"since"`
}

func (h *handler) parked(r *http.Request, svc *service.Service) (any, error) {
	ks, err := h.client(svc).Parked(r.Context(), r.URL.Query().Get("group"))
	if err != nil {
		return nil, err
	}
	out := Keys{Keys: []ParkedKey{}}
	for _, k := range ks {
		out.Keys = append(out.Keys, ParkedKey{Group: k.Group, Key: k.Key, MessageID: k.MessageID, Since: k.Since})
	}
	return out, nil
}

// DrainRequest is the body of POST /admin/dlq/replay and /admin/dlq/purge.
type DrainRequest struct {
	// Topic is the dead-letter topic; Group, instead, names the consumer
	// group whose default dead-letter topic to use.
	Topic string `json:"topic,omitempty"`
	Group string `json:"group,omitempty"`
	// Filter, Limit, Rate (per second) and DryRun are dlq.DrainOptions'.
	Filter dlq.Filter `json:"filter"`
	Limit  int        `json:"limit,omitempty"`
	Rate   float64    `json:"rate,omitempty"`
	DryRun bool       `json:"dry_run,omitempty"`
	// Idle is a Go duration such as "2s"; default dlq.DefaultIdle.
	Idle string `json:"idle,omitempty"`
}

func (d DrainRequest) options() (string, dlq.DrainOptions, error) {
	o := dlq.DrainOptions{Filter: d.Filter, Limit: d.Limit, Rate: d.Rate, DryRun: d.DryRun}
	topic := d.Topic
	switch {
	case topic != "" && d.Group != "":
		return "", o, badRequest("topic %q and group %q: give one", d.Topic, d.Group)
	case topic == "" && d.Group != "":
		topic = service.DeadLetterTopicFor(d.Group)
	case topic == "":
		return "", o, badRequest("topic: required (or group)")
	}
	if d.Idle != "" {
		idle, err := time.ParseDuration(d.Idle)
		if err != nil || idle <= 0 {
			return "", o, badRequest("idle: %q, want a positive Go duration such as 2s", d.Idle)
		}
		o.Idle = idle
	}
	return topic, o, o.Validate()
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	return nil
}

func (h *handler) drain(replay bool) endpoint {
	return func(r *http.Request, svc *service.Service) (any, error) {
		var req DrainRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		topic, o, err := req.options()
		if err != nil {
			return nil, err
		}
		c := h.client(svc)
		run, verb := c.Purge, "purged"
		if replay {
			run, verb = c.Replay, "replayed"
		}
		res, err := run(r.Context(), topic, o)
		if !o.DryRun {
			h.logger.Info("admin: dead letters "+verb, slog.String("topic", topic), slog.Int("count", len(res.IDs)), slog.Any("error", err))
		}
		if err != nil {
			return nil, fmt.Errorf("%s %d before stopping: %w", verb, len(res.IDs), err)
		}
		return res, nil
	}
}

// ReleaseRequest is the body of POST /admin/dlq/release.
type ReleaseRequest struct {
	// Group is the consumer group as the handler declares it (without the
	// service's namespace); Key the parked key.
	Group string `json:"group"`
	Key   string `json:"key"`
}

// flow is every handler's pause switch and breaker state (GET /admin/flow).
func (h *handler) flow(_ *http.Request, svc *service.Service) (any, error) {
	return svc.Flow(), nil
}

// pause pauses or resumes the handler the path names (POST
// /admin/handlers/{name}/pause|resume) and answers its new flow state.
func (h *handler) pause(paused bool) endpoint {
	return func(r *http.Request, svc *service.Service) (any, error) {
		name := r.PathValue("name")
		set := svc.Resume
		if paused {
			set = svc.Pause
		}
		if err := set(name); err != nil {
			return nil, fmt.Errorf("%w: %w", errNoHandler, err)
		}
		h.logger.Info("admin: handler paused or resumed", slog.String("handler", name), slog.Bool("paused", paused))
		for _, f := range svc.Flow() {
			if f.Handler == name {
				return f, nil
			}
		}
		return nil, nil
	}
}

func (h *handler) release(r *http.Request, svc *service.Service) (any, error) {
	var req ReleaseRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := h.client(svc).Release(r.Context(), req.Group, req.Key); err != nil {
		return nil, err
	}
	h.logger.Info("admin: parked key released", slog.String("group", req.Group), slog.String("key", req.Key))
	return nil, nil
}
