package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/park"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// ErrUnauthorized is returned by [Client] when the API refused the token
// (401 or 403) or refused a write on a read-only API (403).
var ErrUnauthorized = errors.New("admin: refused")

// Client calls a running service's admin API. Its dead-letter methods
// behave as [dlq.Client]'s on the service's broker, with the same
// sentinel errors; a [dlq.DrainOptions.Progress] callback is not called
// (the API answers once the run is over).
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

var _ dlq.Operations = (*Client)(nil)

// NewClient returns a client for the service whose operations server is
// at base (e.g. "http://127.0.0.1:9090"), sending token. hc nil means
// [http.DefaultClient].
func NewClient(base, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin: service URL %q, want http(s)://host:port of the service's operations server", base)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// do sends a request to path (under /admin/) and decodes the answer into
// out (nil: none expected).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := *c.base
	u.Path += Prefix + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin: %s %s: read answer: %w", method, u.Path, err)
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		var kind error
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			kind = ErrUnauthorized
		case http.StatusBadRequest:
			kind = dlq.ErrInvalidOption
		case http.StatusNotFound:
			kind = dlq.ErrNotFound
		case http.StatusNotImplemented:
			kind = dlq.ErrNoBrowser
			if strings.Contains(msg, "parked keys") {
				kind = dlq.ErrNoKeys
			}
		default:
			return fmt.Errorf("admin: %s %s: %s: %s", method, u.Path, resp.Status, msg)
		}
		return &statusError{status: resp.Status, msg: msg, kind: kind}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin: %s %s: answer does not decode: %w", method, u.Path, err)
	}
	return nil
}

// statusError is an error answer of the API; it matches its sentinel
// with errors.Is.
type statusError struct {
	status, msg string
	kind        error
}

func (e *statusError) Error() string { return e.msg + " (" + e.status + ")" }
func (e *statusError) Unwrap() error { return e.kind }

// Handlers returns what the service runs (GET /admin/handlers).
func (c *Client) Handlers(ctx context.Context) (Handlers, error) {
	var out Handlers
	return out, c.do(ctx, http.MethodGet, "handlers", nil, nil, &out)
}

// Flow returns every handler's pause switch and breaker state (GET
// /admin/flow).
func (c *Client) Flow(ctx context.Context) ([]service.FlowState, error) {
	var out []service.FlowState
	return out, c.do(ctx, http.MethodGet, "flow", nil, nil, &out)
}

// Pause stops the named handler taking messages until Resume (needs
// http.admin.write).
func (c *Client) Pause(ctx context.Context, handler string) (service.FlowState, error) {
	var out service.FlowState
	return out, c.do(ctx, http.MethodPost, "handlers/"+handler+"/pause", nil, nil, &out)
}

// Resume lets a paused handler take messages again (needs
// http.admin.write).
func (c *Client) Resume(ctx context.Context, handler string) (service.FlowState, error) {
	var out service.FlowState
	return out, c.do(ctx, http.MethodPost, "handlers/"+handler+"/resume", nil, nil, &out)
}

// Subscriptions returns the service's subscriptions and their state.
func (c *Client) Subscriptions(ctx context.Context) (Subscriptions, error) {
	var out Subscriptions
	return out, c.do(ctx, http.MethodGet, "subscriptions", nil, nil, &out)
}

func filterQuery(q url.Values, f dlq.Filter) {
	for k, vs := range map[string][]string{"type": f.Types, "reason": f.Reasons, "handler": f.Handlers, "failed_group": f.Groups} {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
}

// List implements [dlq.Operations].
func (c *Client) List(ctx context.Context, topic string, f dlq.Filter, letters bool) (dlq.Summary, error) {
	q := url.Values{"topic": {topic}}
	filterQuery(q, f)
	if letters {
		q.Set("letters", "true")
	}
	var out Listing
	if err := c.do(ctx, http.MethodGet, "dlq", q, nil, &out); err != nil {
		return dlq.Summary{Topic: topic, Groups: []dlq.Count{}}, err
	}
	if len(out.Topics) != 1 {
		return dlq.Summary{Topic: topic}, fmt.Errorf("admin: GET /admin/dlq: %d topics in the answer, want 1", len(out.Topics))
	}
	return out.Topics[0], nil
}

// Show implements [dlq.Operations].
func (c *Client) Show(ctx context.Context, topic, id string) (dlq.Letter, error) {
	var out dlq.Letter
	return out, c.do(ctx, http.MethodGet, "dlq/letter", url.Values{"topic": {topic}, "id": {id}}, nil, &out)
}

func drainRequest(topic string, o dlq.DrainOptions) DrainRequest {
	r := DrainRequest{Topic: topic, Filter: o.Filter, Limit: o.Limit, Rate: o.Rate, DryRun: o.DryRun}
	if o.Idle != 0 {
		r.Idle = o.Idle.String()
	}
	return r
}

// Replay implements [dlq.Operations].
func (c *Client) Replay(ctx context.Context, topic string, o dlq.DrainOptions) (dlq.Result, error) {
	var out dlq.Result
	return out, c.do(ctx, http.MethodPost, "dlq/replay", nil, drainRequest(topic, o), &out)
}

// Purge implements [dlq.Operations].
func (c *Client) Purge(ctx context.Context, topic string, o dlq.DrainOptions) (dlq.Result, error) {
	var out dlq.Result
	return out, c.do(ctx, http.MethodPost, "dlq/purge", nil, drainRequest(topic, o), &out)
}

// Release implements [dlq.Operations].
func (c *Client) Release(ctx context.Context, group, key string) error {
	return c.do(ctx, http.MethodPost, "dlq/release", nil, ReleaseRequest{Group: group, Key: key}, nil)
}

// Parked implements [dlq.Operations].
func (c *Client) Parked(ctx context.Context, group string) ([]park.Key, error) {
	var out Keys
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	if err := c.do(ctx, http.MethodGet, "dlq/parked", q, nil, &out); err != nil {
		return nil, err
	}
	ks := make([]park.Key, 0, len(out.Keys))
	for _, k := range out.Keys {
		ks = append(ks, park.Key{Group: k.Group, Key: k.Key, MessageID: k.MessageID, Since: k.Since})
	}
	return ks, nil
}
