package service_test

import (
	"context"
	"log/slog"
	"sync"
)

// attrLog is a slog handler that keeps every record with its attributes.
type attrLog struct {
	mu      *sync.Mutex
	records *[]logRecord
	with    []slog.Attr
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func newAttrLog() (*slog.Logger, *attrLog) {
	h := &attrLog{mu: &sync.Mutex{}, records: &[]logRecord{}}
	return slog.New(h), h
}

func (h *attrLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrLog) WithGroup(string) slog.Handler            { return h }

func (h *attrLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.with = append(append([]slog.Attr(nil), h.with...), as...)
	return &c
}

func (h *attrLog) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.with {
		rec.attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value; return true })
	h.mu.Lock()
	*h.records = append(*h.records, rec)
	h.mu.Unlock()
	return nil
}

// find returns the records with message msg.
func (h *attrLog) find(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.records {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}
