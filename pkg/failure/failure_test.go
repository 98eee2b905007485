package failure_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/failure"
)

func TestClassifiers(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		name      string
		err       error
		permanent bool
		reason    failure.Reason
	}{
		{"plain", base, false, failure.ReasonRetriesExhausted},
		{"permanent", failure.Permanent(base), true, failure.ReasonPermanent},
		{"wrapped permanent", fmt.Errorf("handler: %w", failure.Permanent(base)), true, failure.ReasonPermanent},
		{"with reason", failure.WithReason(failure.ReasonDecode, base), true, failure.ReasonDecode},
		{"panic", &failure.PanicError{Value: "x"}, false, failure.ReasonPanic},
		{"wrapped panic", fmt.Errorf("gave up: %w", &failure.PanicError{Value: "x"}), false, failure.ReasonPanic},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := failure.IsPermanent(tc.err); got != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tc.permanent)
			}
			if got := failure.ReasonOf(tc.err); got != tc.reason {
				t.Errorf("ReasonOf = %s, want %s", got, tc.reason)
			}
			if !errors.Is(tc.err, base) && tc.reason != failure.ReasonPanic {
				t.Errorf("the original error is lost from the chain")
			}
		})
	}
	if failure.Permanent(nil) != nil || failure.WithReason(failure.ReasonDecode, nil) != nil {
		t.Error("marking nil must stay nil")
	}
	if got := failure.WithReason(failure.ReasonHopLimit, base).Error(); got != "hop_limit: boom" {
		t.Errorf("Error() = %q", got)
	}
}

func panicky() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = failure.NewPanicError(r)
		}
	}()
	panic(errors.New("kaput"))
}

func TestPanicError(t *testing.T) {
	err := panicky()
	var p *failure.PanicError
	if !errors.As(err, &p) {
		t.Fatalf("err %T is not a *PanicError", err)
	}
	if !strings.Contains(string(p.Stack), "failure_test.panicky") {
		t.Errorf("stack does not name the panicking function:\n%s", p.Stack)
	}
	if !strings.Contains(err.Error(), "panic: kaput") {
		t.Errorf("Error() = %q", err)
	}
	if p.Unwrap() == nil || p.Unwrap().Error() != "kaput" {
		t.Errorf("Unwrap = %v, want the panic value", p.Unwrap())
	}
	if (&failure.PanicError{Value: 42}).Unwrap() != nil {
		t.Error("Unwrap of a non-error panic value must be nil")
	}
}
