package ops

import (
	"context"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics read from the broker at scrape time (through the same reading
// as /readyz, see prober).
var (
	brokerUpDesc = prometheus.NewDesc("switchyard_broker_up",
		"1 when the broker's health check passed within http.readiness.broker_timeout, else 0.",
		[]string{"broker"}, nil)
	backlogDesc = prometheus.NewDesc("switchyard_backlog_messages",
		"Messages a consumer group has not consumed yet of a topic: ready messages in its queue (RabbitMQ, memory), "+
			"or its consumer lag summed over partitions (Kafka). handlers lists the handlers the subscription feeds, comma-separated.",
		[]string{"group", "topic", "handlers"}, nil)
	partitionLagDesc = prometheus.NewDesc("switchyard_backlog_partition_messages",
		"Consumer lag of a group in one partition (Kafka): end offset less committed offset.",
		[]string{"group", "topic", "partition"}, nil)
)

// brokerCollector exports the broker's health and every subscription's
// backlog while a service runs; nothing otherwise.
type brokerCollector struct{ s *Server }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- brokerUpDesc
	ch <- backlogDesc
	ch <- partitionLagDesc
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	svc := c.s.svc.Load()
	if svc == nil || c.s.stopped.Load() {
		return
	}
	pr := c.s.prober.read(context.Background(), svc)
	if pr.checked {
		up := 0.0
		if pr.healthErr == nil {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(brokerUpDesc, prometheus.GaugeValue, up, pr.broker)
	}
	seen := map[subKey]bool{}
	for _, sub := range pr.subs {
		k := subKey{sub.Group, sub.Topic}
		reading, ok := pr.backlogs[k]
		if !ok || reading.err != nil || seen[k] {
			continue // an unknown backlog is no series rather than a false 0
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(reading.backlog.Messages),
			sub.Group, sub.Topic, strings.Join(sub.Handlers, ","))
		for p, lag := range reading.backlog.Partitions {
			ch <- prometheus.MustNewConstMetric(partitionLagDesc, prometheus.GaugeValue, float64(lag),
				sub.Group, sub.Topic, strconv.Itoa(int(p)))
		}
	}
}
