package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The round trips themselves are tested on every broker by
// internal/rpctest (run from each adapter's tests); these are the
// runtime's own edges.

func TestRequestAndReplyRefuseABrokerWithoutInboxes(t *testing.T) {
	svc := service.New(newFakeBroker(t))
	_, err := service.Request[orderPlaced, stockReserved](context.Background(), svc, orderPlaced{OrderID: "o1"})
	if !errors.Is(err, service.ErrNoReplies) {
		t.Fatalf("Request = %v, want ErrNoReplies", err)
	}
	err = service.Reply(svc, "reserve", func(context.Context, orderPlaced) (stockReserved, error) { return stockReserved{}, nil })
	if !errors.Is(err, service.ErrNoReplies) {
		t.Fatalf("Reply = %v, want ErrNoReplies", err)
	}
}

func TestRequestTimeoutOptionIsValidated(t *testing.T) {
	svc := service.New(newBroker(t), service.WithRequestTimeout(-time.Second))
	if err := svc.Err(); err == nil || !strings.Contains(err.Error(), "request_timeout: -1s") {
		t.Fatalf("Err = %v, want it to name request_timeout and its value", err)
	}
}

// Without a deadline on ctx, Request waits WithRequestTimeout.
func TestRequestWithoutDeadlineUsesTheServiceTimeout(t *testing.T) {
	svc := service.New(newBroker(t), service.WithRequestTimeout(200*time.Millisecond))
	began := time.Now()
	_, err := service.Request[orderPlaced, stockReserved](context.Background(), svc, orderPlaced{OrderID: "o1"})
	if !errors.Is(err, service.ErrRequestTimeout) {
		t.Fatalf("Request = %v, want ErrRequestTimeout", err)
	}
	if took := time.Since(began); took < 200*time.Millisecond || took > 5*time.Second {
		t.Fatalf("Request gave up after %s, want about 200ms", took)
	}
}

// An event of the request type that was published, not requested, has no
// reply address: it is dead-lettered, not handled.
func TestReplyDeadLettersAnEventThatIsNotARequest(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	called := make(chan struct{}, 1)
	if err := service.Reply(svc, "reserve", func(context.Context, orderPlaced) (stockReserved, error) {
		called <- struct{}{}
		return stockReserved{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", service.DeadLetterTopicFor("reserve"))
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o1"}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, dead, "the dead letter")
	if got := m.Metadata[header.DeadLetterError]; !strings.Contains(got, service.ErrNotARequest.Error()) {
		t.Fatalf("dead letter error %q, want ErrNotARequest", got)
	}
	select {
	case <-called:
		t.Fatal("the replier ran for an event that was not a request")
	default:
	}
}

// A batch on a closed broker fails event by event, and errors.Is sees
// the cause through the PublishBatchError.
func TestPublishBatchReportsEveryFailure(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	_ = b.Close()
	err := svc.PublishBatch(context.Background(), orderPlaced{OrderID: "1"}, orderPlaced{OrderID: "2"})
	var berr *service.PublishBatchError
	if !errors.As(err, &berr) || len(berr.Failed()) != 2 || !berr.Sent {
		t.Fatalf("PublishBatch = %v, want both events failed", err)
	}
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("PublishBatch = %v, want it to wrap broker.ErrClosed", err)
	}
	if err := svc.PublishBatch(context.Background()); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

// Two requests in flight with the same id (WithID) would share one waiting
// slot: the second would take the first's reply, and whichever returned
// first would forget the other's. The second is refused at once instead,
// and once the first is answered the id can be used again.
func TestRequestRefusesAnIDAlreadyWaiting(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	got := make(chan struct{}, 2)
	release := make(chan struct{})
	if err := service.Reply(svc, "reserve", func(_ context.Context, e orderPlaced) (stockReserved, error) {
		got <- struct{}{}
		<-release
		return stockReserved{OrderID: e.OrderID}, nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		resp, err := service.Request[orderPlaced, stockReserved](ctx, svc, orderPlaced{OrderID: "o1"}, service.WithID("req-1"))
		if err == nil && resp.OrderID != "o1" {
			err = errors.New("the first request got another's answer: " + resp.OrderID)
		}
		first <- err
	}()
	recv(t, got, "the first request")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	_, err := service.Request[orderPlaced, stockReserved](ctx, svc, orderPlaced{OrderID: "o2"}, service.WithID("req-1"))
	if err == nil || errors.Is(err, service.ErrRequestTimeout) || !strings.Contains(err.Error(), `"req-1"`) {
		t.Fatalf("second Request with a waiting id = %v, want an error at once naming the id", err)
	}
	close(release)
	if err := recv(t, first, "the first request's answer"); err != nil {
		t.Fatalf("first Request: %v", err)
	}
	if resp, err := service.Request[orderPlaced, stockReserved](ctx, svc, orderPlaced{OrderID: "o3"}, service.WithID("req-1")); err != nil || resp.OrderID != "o3" {
		t.Fatalf("Request reusing an id no longer waiting = %+v, %v", resp, err)
	}
}
