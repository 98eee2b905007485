package config

import (
	"testing"
	"time"
)

// TestHandlerBatch: handlers.<name>.batch comes from the file and the
// environment, and bad values name the field, the value and what is
// allowed.
func TestHandlerBatch(t *testing.T) {
	c, err := ParseEnviron([]byte("handlers:\n  analytics.sink:\n    batch: {size: 500}\n"), []string{
		"SWITCHYARD_HANDLERS_ANALYTICS_SINK_BATCH_WINDOW=250ms",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Handlers["analytics.sink"].Batch; b.Size != 500 || b.Window != 250*time.Millisecond {
		t.Errorf("handlers.analytics.sink.batch = %+v, want size 500, window 250ms", b)
	}
	_, err = ParseEnviron([]byte("handlers:\n  x: {batch: {size: -2, window: -1s}}\n"), nil, nil)
	wantAll(t, err,
		"handlers.x.batch.size: -2, want 1 to 10000 (0 means the default 100)",
		"handlers.x.batch.window: -1s, want > 0 (0 means the default 100ms)")
}
