package config_test

import (
	"reflect"
	"testing"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/asyncapi"
)

func TestAsyncAPI(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       asyncapi.Config
	}{
		{"memory", "service: {name: shop}\n", asyncapi.Config{Title: "shop", Version: "1.0.0"}},
		{"kafka defaults", "broker: {type: kafka}\n", asyncapi.Config{Version: "1.0.0",
			Servers: []asyncapi.Server{{Host: "127.0.0.1:9092", Protocol: "kafka"}},
			Kafka:   &asyncapi.Kafka{Partitions: 3, Replicas: 0}}},
		{"kafka", "broker:\n  type: kafka\n  kafka: {brokers: [k1:9092, k2:9092], partitions: 6, replication_factor: 3, tls: {enabled: true}}\n",
			asyncapi.Config{Version: "1.0.0",
				Servers: []asyncapi.Server{{Host: "k1:9092", Protocol: "kafka-secure"}, {Host: "k2:9092", Protocol: "kafka-secure"}},
				Kafka:   &asyncapi.Kafka{Partitions: 6, Replicas: 3}}},
		{"amqp without credentials", "broker:\n  type: amqp\n  amqp: {url: \"amqps://user:s3cret@rabbit:5671/prod\", exchange_prefix: ex., queue_prefix: qu.}\n",
			asyncapi.Config{Version: "1.0.0",
				Servers: []asyncapi.Server{{Host: "rabbit:5671", Protocol: "amqps", Pathname: "/prod"}},
				AMQP:    &asyncapi.AMQP{ExchangePrefix: "ex.", QueuePrefix: "qu.", VHost: "prod"}}},
		{"amqp default vhost", "broker: {type: amqp}\n", asyncapi.Config{Version: "1.0.0",
			Servers: []asyncapi.Server{{Host: "127.0.0.1:5672", Protocol: "amqp"}},
			AMQP:    &asyncapi.AMQP{VHost: "/"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.AsyncAPI("1.0.0")
			if tt.want.Title == "" {
				tt.want.Title = cfg.Service.Name // the default service name
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("AsyncAPI() =\n%+v %+v %+v\nwant\n%+v %+v %+v", got, got.Kafka, got.AMQP, tt.want, tt.want.Kafka, tt.want.AMQP)
			}
		})
	}
}
