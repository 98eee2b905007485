package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// maxReadWait bounds how long GET /orders/{id}?min_version=N waits for the
// read model.
const maxReadWait = 10 * time.Second

// handler is the HTTP API:
//
//	POST /orders               {"customer_id", "items": [{"sku", "qty", "price_cents"}], "order_id"?}
//	POST /orders/{id}/pay
//	POST /orders/{id}/ship
//	GET  /orders/{id}          the summary; ?min_version=N waits (?wait=, at most 10s) until it shows version N
//	GET  /orders/{id}/events   the order's stream, as stored
//	POST /rebuild              rebuild the read model from the events
//
// Commands answer with the order id and the stream version they produced;
// a rule they break is 409 (422 for an invalid order, 404 for an unknown
// one), whichever instance of the service decided. An Idempotency-Key
// header becomes the command's id; with deduplication on, a key handled
// before answers 200 with status "already_handled".
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", a.placeOrder)
	mux.HandleFunc("POST /orders/{id}/pay", func(w http.ResponseWriter, r *http.Request) {
		a.send(w, r, http.StatusOK, PayOrder{OrderID: r.PathValue("id")})
	})
	mux.HandleFunc("POST /orders/{id}/ship", func(w http.ResponseWriter, r *http.Request) {
		a.send(w, r, http.StatusOK, ShipOrder{OrderID: r.PathValue("id")})
	})
	mux.HandleFunc("GET /orders/{id}", a.getSummary)
	mux.HandleFunc("GET /orders/{id}/events", a.getEvents)
	mux.HandleFunc("POST /rebuild", a.rebuild)
	return mux
}

// commandReply is the body of a command's answer.
type commandReply struct {
	OrderID   string `json:"order_id"`
	Version   int    `json:"version,omitempty"`
	CommandID string `json:"command_id"`
	Status    string `json:"status"`
}

func (a *app) placeOrder(w http.ResponseWriter, r *http.Request) {
	var c PlaceOrder
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %v; want {\"customer_id\": ..., \"items\": [{\"sku\": ..., \"qty\": ..., \"price_cents\": ...}]}", err))
		return
	}
	if c.OrderID == "" {
		c.OrderID = "order-" + uuid.NewString()
	}
	a.send(w, r, http.StatusCreated, c)
}

// send sends cmd and waits for its outcome, which it turns into the reply.
func (a *app) send(w http.ResponseWriter, r *http.Request, okStatus int, cmd command.AggregateCommand) {
	ctx := r.Context()
	if id := r.Header.Get("X-Correlation-ID"); id != "" {
		ctx = middleware.WithCorrelationID(ctx, id)
	}
	var opts []command.SendOption
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		opts = append(opts, command.WithID(key))
	}
	ctx, cancel := context.WithTimeout(ctx, a.commandTimeout)
	defer cancel()
	res, err := a.bus.SendAndWait(ctx, cmd, opts...)
	reply := commandReply{OrderID: cmd.EventKey(), Version: res.Version, CommandID: res.ID, Status: "done"}
	switch {
	case err == nil:
		if okStatus == http.StatusCreated {
			w.Header().Set("Location", "/orders/"+reply.OrderID)
		}
		writeJSON(w, okStatus, reply)
	case errors.Is(err, command.ErrAlreadyHandled):
		// A retry of a request whose Idempotency-Key was handled before
		// (with deduplication on): its effect is in the read model.
		reply.Status = "already_handled"
		writeJSON(w, http.StatusOK, reply)
	case errors.Is(err, command.ErrNoOutcome) && res.ID != "":
		// Sent, but not decided within the timeout: it may still be.
		reply.Status = "pending"
		writeJSON(w, http.StatusAccepted, reply)
	case command.IsRejected(err) && errors.Is(err, errInvalid):
		writeError(w, http.StatusUnprocessableEntity, err)
	case command.IsRejected(err) && errors.Is(err, errUnknownOrder):
		writeError(w, http.StatusNotFound, err)
	case command.IsRejected(err):
		writeError(w, http.StatusConflict, err)
	default:
		a.logger.Error("command failed", "command", cmd.EventType(), "order_id", reply.OrderID, "error", err)
		writeError(w, http.StatusServiceUnavailable, err)
	}
}

func (a *app) getSummary(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	minVersion, wait, err := readOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	deadline := time.Now().Add(wait)
	poll := time.Millisecond // doubling to 20ms: the projection usually lands within a few
	for {
		s, ok, err := a.summaries.Get(r.Context(), id)
		switch {
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
			return
		case ok && s.Version >= minVersion:
			writeJSON(w, http.StatusOK, s)
			return
		case time.Now().After(deadline):
			if !ok && minVersion == 0 {
				writeError(w, http.StatusNotFound, fmt.Errorf("order %q: %w", id, errUnknownOrder))
				return
			}
			// The read model lags behind the write the client made.
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, fmt.Errorf("order %q: read model at version %d, want %d: try again", id, s.Version, minVersion))
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(poll): // the read model is a table, not a stream
		}
		poll = min(2*poll, 20*time.Millisecond)
	}
}

// readOptions parses ?min_version=N&wait=D.
func readOptions(r *http.Request) (int, time.Duration, error) {
	q := r.URL.Query()
	var minVersion int
	if v := q.Get("min_version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("min_version: %q, want a version >= 0", v)
		}
		minVersion = n
	}
	wait := time.Duration(0)
	if minVersion > 0 {
		wait = 5 * time.Second
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxReadWait {
			return 0, 0, fmt.Errorf("wait: %q, want a duration from 0s to %s", v, maxReadWait)
		}
		wait = d
	}
	return minVersion, wait, nil
}

// storedEvent is one event of GET /orders/{id}/events.
type storedEvent struct {
	Version       int             `json:"version"`
	Position      int64           `json:"position,omitempty"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	ID            string          `json:"id"`
	Time          time.Time       `json:"time"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	CausationID   string          `json:"causation_id,omitempty"`
	Data          json.RawMessage `json:"data"`
}

func (a *app) getEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	recs, err := a.store.Load(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if len(recs) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("order %q: %w", id, errUnknownOrder))
		return
	}
	out := make([]storedEvent, len(recs))
	for i, rec := range recs {
		env := rec.Envelope
		data := json.RawMessage(rec.Data)
		if !strings.HasPrefix(env.ContentType, "application/json") && !json.Valid(rec.Data) {
			data, _ = json.Marshal(rec.Data) // not JSON: base64 in a string
		}
		out[i] = storedEvent{
			Version: rec.Version, Position: rec.Position, Type: env.Type, SchemaVersion: env.Version,
			ID: env.ID, Time: env.Time, CorrelationID: env.CorrelationID, CausationID: env.CausationID, Data: data,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *app) rebuild(w http.ResponseWriter, r *http.Request) {
	res, err := a.summaries.Rebuild(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
