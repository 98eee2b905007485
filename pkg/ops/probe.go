package ops

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// probeMaxAge is how long one reading of the broker serves /readyz and
// /metrics: probes and scrapes arriving together cost one round of broker
// requests, not one each.
const probeMaxAge = time.Second

// subKey identifies a subscription.
type subKey struct{ group, topic string }

// probe is one reading of the broker: its health and every subscription's
// backlog.
type probe struct {
	at time.Time
	// broker is the broker's name; checked is false when it does not
	// implement broker.HealthChecker (then healthErr is nil).
	broker    string
	checked   bool
	healthErr error
	// backlogs holds a reading per subscription when the broker
	// implements broker.BacklogReader.
	backlogs map[subKey]backlogReading
	subs     []service.SubscriptionHealth
}

type backlogReading struct {
	backlog broker.Backlog
	err     error
}

// prober reads the broker at most once per probeMaxAge, each reading
// bounded by timeout.
type prober struct {
	timeout time.Duration

	mu   sync.Mutex // held while reading: concurrent callers share one reading
	svc  *service.Service
	last probe
}

// read returns a reading of svc's broker no older than probeMaxAge.
func (p *prober) read(ctx context.Context, svc *service.Service) probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.svc == svc && !p.last.at.IsZero() && time.Since(p.last.at) < probeMaxAge {
		return p.last
	}
	p.svc, p.last = svc, readBroker(ctx, svc, p.timeout)
	return p.last
}

// readBroker checks svc's broker, then, if it is healthy, reads the backlog
// of every subscription concurrently, all within timeout.
func readBroker(ctx context.Context, svc *service.Service, timeout time.Duration) probe {
	// A reading is shared: the request that happens to make it must not
	// cut it short for the others by going away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	b := svc.Broker()
	pr := probe{broker: b.Name(), subs: svc.Health()}
	if hc, ok := b.(broker.HealthChecker); ok {
		pr.checked = true
		pr.healthErr = hc.Check(ctx)
		if pr.healthErr == nil && ctx.Err() != nil {
			pr.healthErr = ctx.Err()
		}
		if errors.Is(pr.healthErr, context.DeadlineExceeded) && ctx.Err() != nil {
			pr.healthErr = errors.Join(errors.New("no answer within http.readiness.broker_timeout "+timeout.String()), pr.healthErr)
		}
	}
	if br, ok := b.(broker.BacklogReader); ok && pr.healthErr == nil {
		pr.backlogs = make(map[subKey]backlogReading, len(pr.subs))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range pr.subs {
			k := subKey{s.Group, s.Topic}
			if _, dup := pr.backlogs[k]; dup {
				continue
			}
			pr.backlogs[k] = backlogReading{}
			wg.Go(func() {
				bl, err := br.Backlog(ctx, k.topic, k.group)
				mu.Lock()
				pr.backlogs[k] = backlogReading{bl, err}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	pr.at = time.Now()
	return pr
}
