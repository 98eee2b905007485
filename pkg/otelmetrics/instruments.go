package otelmetrics

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Instrument names (OpenTelemetry messaging semantic conventions, and
// Switchyard's own under switchyard.*).
const (
	SentMessages     = "messaging.client.sent.messages"
	ConsumedMessages = "messaging.client.consumed.messages"
	ProcessDuration  = "messaging.process.duration"
	Retries          = "switchyard.retries"
	DeadLetters      = "switchyard.dead_letters"
	Nacks            = "switchyard.nacks"
	Duplicates       = "switchyard.duplicates"
	InFlight         = "switchyard.in_flight"
	// BatchSize and BatchDuration are recorded for batch handlers
	// (service.HandleBatch): switchyard_batch_size and
	// switchyard_batch_duration_seconds through the Prometheus exporter,
	// as in package metrics.
	BatchSize     = "switchyard.batch.size"
	BatchDuration = "switchyard.batch.duration"
)

// Attribute keys of Switchyard's own.
const (
	HandlerKey          = attribute.Key("switchyard.handler")
	DeadLetterReasonKey = attribute.Key("switchyard.dead_letter.reason")
)

// Values of error.type on messaging.process.duration.
const (
	ErrorDeadLettered = "dead_lettered"
	ErrorNacked       = "nacked"
)

// ScopeName is the instrumentation scope of the instruments.
const ScopeName = "github.com/switchyard-go/switchyard"

// processBuckets are messaging.process.duration's bucket bounds in
// seconds: 0.5ms to 2 minutes, the range of a handler from a cache hit to
// a delivery that retried for a while.
var processBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// batchSizeBuckets and batchDurationBuckets are those of package metrics'
// switchyard_batch_size (1 to 2048 messages) and
// switchyard_batch_duration_seconds (0.5ms to about 2 minutes), so that
// both exports read alike.
var (
	batchSizeBuckets     = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}
	batchDurationBuckets = []float64{0.0005, 0.002, 0.008, 0.032, 0.128, 0.512, 2.048, 8.192, 32.768, 131.072}
)

var _ metrics.BatchRecorder = (*instruments)(nil)

// instruments records a service's metrics; it is the service's recorder
// (see package metrics) for what the runtime reports by handler name, and
// its delivery middleware for what a delivery shows.
type instruments struct {
	system attribute.KeyValue

	sent, consumed, retries, deadLetters, nacks, duplicates metric.Int64Counter
	duration, batchDuration                                 metric.Float64Histogram
	batchSize                                               metric.Int64Histogram
	inFlight                                                metric.Int64UpDownCounter

	byHandler sync.Map // handler name -> attribute.Set of its deliveries
}

// Instrument is the service option that records the service's metrics
// with mp: the instruments listed in the package documentation. Use it
// with a meter provider of your own; [With] builds one from a Config.
func Instrument(mp metric.MeterProvider) service.Option {
	return func(s *service.Service) {
		in, err := newInstruments(mp, s)
		if err != nil {
			service.WithStartError(err)(s)
			return
		}
		service.WithRecorder(in)(s)
		service.WithDeliveryMiddleware(in.middleware)(s)
	}
}

func newInstruments(mp metric.MeterProvider, s *service.Service) (*instruments, error) {
	m := mp.Meter(ScopeName)
	in := &instruments{}
	if b := s.Broker(); b != nil {
		in.system = semconv.MessagingSystemKey.String(middleware.MessagingSystem(b.Name()))
	}
	var errs [10]error
	in.sent, errs[0] = m.Int64Counter(SentMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Events published and confirmed by the broker."))
	in.consumed, errs[1] = m.Int64Counter(ConsumedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries taken from the broker, one per delivery whatever its attempts."))
	in.duration, errs[2] = m.Float64Histogram(ProcessDuration, metric.WithUnit("s"),
		metric.WithDescription("Time from delivery to its outcome, in-process retries included; error.type when not handled."),
		metric.WithExplicitBucketBoundaries(processBuckets...))
	in.retries, errs[3] = m.Int64Counter(Retries, metric.WithUnit("{attempt}"),
		metric.WithDescription("Failed attempts that were retried."))
	in.deadLetters, errs[4] = m.Int64Counter(DeadLetters, metric.WithUnit("{message}"),
		metric.WithDescription("Messages given up on and published to a dead-letter topic."))
	in.nacks, errs[5] = m.Int64Counter(Nacks, metric.WithUnit("{message}"),
		metric.WithDescription("Messages handed back to the broker for redelivery (failure path failed, or shutdown)."))
	in.duplicates, errs[6] = m.Int64Counter(Duplicates, metric.WithUnit("{message}"),
		metric.WithDescription("Redelivered messages skipped by the idempotency check."))
	in.inFlight, errs[7] = m.Int64UpDownCounter(InFlight, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries being processed now."))
	in.batchSize, errs[8] = m.Int64Histogram(BatchSize, metric.WithUnit("{message}"),
		metric.WithDescription("Messages in each batch a batch handler handled."),
		metric.WithExplicitBucketBoundaries(batchSizeBuckets...))
	in.batchDuration, errs[9] = m.Float64Histogram(BatchDuration, metric.WithUnit("s"),
		metric.WithDescription("Time a batch handler took for one batch."),
		metric.WithExplicitBucketBoundaries(batchDurationBuckets...))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

// deliveryAttrs are the attributes of a handler's deliveries, built once
// per handler.
func (in *instruments) deliveryAttrs(h *middleware.Info) attribute.Set {
	if v, ok := in.byHandler.Load(h.Name); ok {
		return v.(attribute.Set)
	}
	kvs := []attribute.KeyValue{
		semconv.MessagingDestinationName(h.Topic),
		semconv.MessagingConsumerGroupName(h.Group),
		semconv.MessagingOperationName("process"),
		HandlerKey.String(h.Name),
	}
	if in.system.Valid() {
		kvs = append(kvs, in.system)
	}
	set := attribute.NewSet(kvs...)
	in.byHandler.Store(h.Name, set)
	return set
}

// handlerAttrs are the attributes of an event reported by handler name:
// its deliveries' once it has had one, else the name alone (a message no
// handler could take, rejected before any delivery of that handler).
func (in *instruments) handlerAttrs(name string) attribute.Set {
	if v, ok := in.byHandler.Load(name); ok {
		return v.(attribute.Set)
	}
	if in.system.Valid() {
		return attribute.NewSet(HandlerKey.String(name), in.system)
	}
	return attribute.NewSet(HandlerKey.String(name))
}

func (in *instruments) middleware(next middleware.Handler) middleware.Handler {
	return func(ctx context.Context, d *middleware.Delivery) error {
		set := in.deliveryAttrs(d.Handler)
		attrs := metric.WithAttributeSet(set)
		in.consumed.Add(ctx, 1, attrs)
		in.inFlight.Add(ctx, 1, attrs)
		err := next(ctx, d)
		in.inFlight.Add(ctx, -1, attrs)
		switch {
		case err != nil:
			in.duration.Record(ctx, sinceSeconds(d.Received), attrs, metric.WithAttributes(semconv.ErrorTypeKey.String(ErrorNacked)))
		case d.DeadLettered:
			in.duration.Record(ctx, sinceSeconds(d.Received), attrs, metric.WithAttributes(semconv.ErrorTypeKey.String(ErrorDeadLettered)))
		default:
			in.duration.Record(ctx, sinceSeconds(d.Received), attrs)
		}
		return err
	}
}

// The recorder side (metrics.Recorder).

func (in *instruments) Published(topic, eventType string) {
	kvs := []attribute.KeyValue{
		semconv.MessagingDestinationName(topic),
		semconv.MessagingOperationName("send"),
		semconv.CloudEventsEventType(eventType),
	}
	if in.system.Valid() {
		kvs = append(kvs, in.system)
	}
	in.sent.Add(context.Background(), 1, metric.WithAttributes(kvs...))
}

// Handled is measured by the delivery middleware instead.
func (in *instruments) Handled(string, time.Duration) {}

func (in *instruments) Retried(h string) {
	in.retries.Add(context.Background(), 1, metric.WithAttributeSet(in.handlerAttrs(h)))
}

func (in *instruments) DeadLettered(h, reason string) {
	in.deadLetters.Add(context.Background(), 1, metric.WithAttributeSet(in.handlerAttrs(h)),
		metric.WithAttributes(DeadLetterReasonKey.String(reason)))
}

func (in *instruments) Nacked(h string) {
	in.nacks.Add(context.Background(), 1, metric.WithAttributeSet(in.handlerAttrs(h)))
}

func (in *instruments) Duplicate(h string) {
	in.duplicates.Add(context.Background(), 1, metric.WithAttributeSet(in.handlerAttrs(h)))
}

// Batch implements metrics.BatchRecorder.
func (in *instruments) Batch(h string, size int, d time.Duration) {
	attrs := metric.WithAttributeSet(in.handlerAttrs(h))
	in.batchSize.Record(context.Background(), int64(size), attrs)
	in.batchDuration.Record(context.Background(), d.Seconds(), attrs)
}
