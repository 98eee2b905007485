package command_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dropRabbitMQ deletes the queues and exchanges whose names start with
// prefix from the shared RabbitMQ, at the end of the test.
func dropRabbitMQ(t *testing.T, url, ctl, prefix string) {
	t.Cleanup(func() {
		conn, err := amqp091.Dial(url)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		for _, kind := range []string{"queues", "exchanges"} {
			out, err := exec.Command("sh", "-c", ctl+" -q list_"+kind+" name").Output()
			if err != nil {
				t.Logf("cleanup: list %s: %v", kind, err)
				continue
			}
			for _, name := range withPrefix(strings.Fields(string(out)), prefix) {
				ch, err := conn.Channel()
				if err != nil {
					t.Logf("cleanup: %v", err)
					return
				}
				if kind == "queues" {
					_, err = ch.QueueDelete(name, false, false, false)
				} else {
					err = ch.ExchangeDelete(name, false, false)
				}
				if err != nil {
					t.Logf("cleanup: delete %s: %v", name, err)
				}
				_ = ch.Close()
			}
		}
	})
}

// dropKafka deletes the topics and consumer groups whose names start with
// prefix from the shared Kafka, at the end of the test.
func dropKafka(t *testing.T, brokers []string, prefix string) {
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if groups, err := adm.ListGroups(ctx); err == nil && len(withPrefix(groups.Groups(), prefix)) > 0 {
			_, _ = adm.DeleteGroups(ctx, withPrefix(groups.Groups(), prefix)...)
		}
		if topics, err := adm.ListTopics(ctx); err == nil && len(withPrefix(topics.Names(), prefix)) > 0 {
			if _, err := adm.DeleteTopics(ctx, withPrefix(topics.Names(), prefix)...); err != nil {
				t.Logf("cleanup: delete topics: %v", err)
			}
		}
	})
}

// withPrefix is those of names that start with prefix.
func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}
