package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// checkTrimmed fails t unless got is full cut to at most MaxErrorText
// bytes: valid UTF-8, a prefix of full, and marked as trimmed.
func checkTrimmed(t *testing.T, got, full string) {
	t.Helper()
	if len(got) > middleware.MaxErrorText {
		t.Errorf("error header is %d bytes, want at most %d", len(got), middleware.MaxErrorText)
	}
	if !utf8.ValidString(got) {
		t.Errorf("error header is not valid UTF-8 (cut inside a character): ...%q", got[max(len(got)-40, 0):])
	}
	i := strings.LastIndex(got, "\n")
	if i < 0 || !strings.Contains(got[i:], "trimmed") {
		t.Fatalf("error header does not say it was trimmed: ...%q", got[max(len(got)-40, 0):])
	}
	if kept := got[:i]; !strings.HasPrefix(full, kept) || len(kept) < middleware.MaxErrorText/2 {
		t.Errorf("error header keeps %d bytes that are not the start of the error", len(kept))
	}
}

// TestDeadLetterErrorTextIsTrimmed: a huge error cannot make the dead letter
// too large for the broker; the text is cut at a character boundary
// wherever the limit falls inside a multi-byte character.
func TestDeadLetterErrorTextIsTrimmed(t *testing.T) {
	for pad := range 4 { // shifts where the cut falls within the 3-byte "€"
		text := strings.Repeat("x", pad) + strings.Repeat("€", middleware.MaxErrorText)
		dl := middleware.DeadLetterMessage(newDelivery(), failure.ReasonPermanent, errors.New(text), t0)
		checkTrimmed(t, dl.Metadata.Get(header.DeadLetterError), text)
	}
	short := "negative total: 名前"
	if got := middleware.DeadLetterMessage(newDelivery(), failure.ReasonPermanent, errors.New(short), t0).Metadata.Get(header.DeadLetterError); got != short {
		t.Errorf("short error header = %q, want it unchanged", got)
	}
}

func panicDeep(n int) {
	if n == 0 {
		panic("deep")
	}
	panicDeep(n - 1)
}

// TestDeadLetterPanicStackIsTrimmed: a panic's stack is the usual huge
// error text; its dead letter keeps the start (the value and the innermost
// frames) within the limit.
func TestDeadLetterPanicStackIsTrimmed(t *testing.T) {
	pub := &recordingPublisher{}
	var full string
	err := middleware.Chain(func(context.Context, *middleware.Delivery) error { panicDeep(300); return nil },
		deadLetter(pub, newClock(), func(_ *middleware.Delivery, _ failure.Reason, err error) { full = err.Error() }),
		middleware.Recover(),
	)(context.Background(), newDelivery())
	if err != nil {
		t.Fatal(err)
	}
	if len(full) <= middleware.MaxErrorText {
		t.Fatalf("the panic's error is %d bytes, not more than MaxErrorText: the test tests no trimming", len(full))
	}
	md := pub.msgs[0].Metadata
	if md.Get(header.DeadLetterReason) != string(failure.ReasonPanic) {
		t.Errorf("reason = %q, want panic", md.Get(header.DeadLetterReason))
	}
	got := md.Get(header.DeadLetterError)
	checkTrimmed(t, got, full)
	if !strings.HasPrefix(got, "panic: deep") || !strings.Contains(got, "panicDeep") {
		t.Errorf("trimmed error lost the panic value or its innermost frames: %q", got[:min(len(got), 200)])
	}
}
