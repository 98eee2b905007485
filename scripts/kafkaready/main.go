// Command kafkaready waits until a Kafka broker answers a real metadata
// request, the readiness check behind scripts/kafka.sh and scripts/up.sh.
// An open port is not enough: a KRaft broker listens before its metadata is
// loaded, and a test that starts then sees "not controller" or no brokers.
//
// Usage:
//
//	go run ./scripts/kafkaready [-brokers 127.0.0.1:9092] [-timeout 90s] [-smoke]
//
// It exits 0 once ListBrokers returns at least one broker, 1 when the timeout
// passes first. With -smoke it then creates a throwaway topic, produces one
// record, reads it back in a consumer group, commits the offset and deletes
// the topic and the group, proving the broker serves clients end to end: in
// particular that the group coordinator answers, which it may not yet do
// when metadata already does. scripts/kafka.sh waits for -smoke after every
// start and restart.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated bootstrap addresses")
	timeout := flag.Duration("timeout", 90*time.Second, "how long to wait for the broker")
	smoke := flag.Bool("smoke", false, "after the broker answers, create a topic, produce, consume in a group, commit and delete the topic")
	quiet := flag.Bool("q", false, "print nothing on success")
	replicas := flag.Int("replicas", 1, "wait for at least this many brokers; the smoke topic gets this many replicas and is used only once all are in sync (a cluster, scripts/cluster.sh)")
	flag.Parse()
	if *replicas < 1 || *replicas > 32767 {
		fmt.Fprintf(os.Stderr, "kafkaready: -replicas %d: want 1 to 32767\n", *replicas)
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	addrs := strings.Split(*brokers, ",")
	n, err := waitBrokers(ctx, addrs, *replicas)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkaready: %s: %v\n", *brokers, err)
		os.Exit(1)
	}
	if *smoke {
		if err := retryRoundTrip(ctx, addrs, int16(*replicas)); err != nil {
			fmt.Fprintf(os.Stderr, "kafkaready: smoke test on %s: %v\n", *brokers, err)
			os.Exit(1)
		}
	}
	if !*quiet {
		msg := fmt.Sprintf("kafkaready: %s answers metadata (%d broker(s))", *brokers, n)
		if *smoke {
			msg += ", produce/consume round trip ok"
		}
		fmt.Println(msg)
	}
}

// waitBrokers retries ListBrokers until it returns at least want brokers or ctx ends.
func waitBrokers(ctx context.Context, addrs []string, want int) (int, error) {
	var last error
	for {
		n, err := listBrokers(ctx, addrs)
		if err == nil && n >= want {
			return n, nil
		}
		if err == nil {
			err = fmt.Errorf("metadata lists %d broker(s), want %d", n, want)
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("not ready: %w (last error: %w)", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func listBrokers(ctx context.Context, addrs []string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return 0, fmt.Errorf("new client: %w", err)
	}
	defer cl.Close()
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	bs, err := kadm.NewClient(cl).ListBrokers(actx)
	if err != nil {
		return 0, fmt.Errorf("list brokers: %w", err)
	}
	return len(bs), nil
}

// retryRoundTrip runs roundTrip until it succeeds or ctx ends. Right after
// a (re)start a broker answers metadata before it leads its partitions:
// producing then fails with a retriable error such as
// UNKNOWN_TOPIC_OR_PARTITION, which says "not yet", not "broken".
func retryRoundTrip(ctx context.Context, addrs []string, replicas int16) error {
	for {
		err := roundTrip(ctx, addrs, replicas)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// roundTrip creates a topic, waits until all its replicas are in sync,
// produces one record, consumes it in a group, commits, then deletes the
// topic and the group.
func roundTrip(ctx context.Context, addrs []string, replicas int16) error {
	topic := fmt.Sprintf("kafkaready-%d", time.Now().UnixNano())
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	if _, err := adm.CreateTopic(ctx, 1, replicas, nil, topic); err != nil {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteGroup(dctx, topic)
		_, _ = adm.DeleteTopic(dctx, topic)
	}()
	if err := waitInSync(ctx, adm, topic, int(replicas)); err != nil {
		return err
	}
	// The consumer is closed (leaving its group) before the deferred deletes run.
	return consumeInGroup(ctx, addrs, topic)
}

func consumeInGroup(ctx context.Context, addrs []string, topic string) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer cl.Close()

	want := "ready"
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(want)}).FirstErr(); err != nil {
		return fmt.Errorf("produce to %q: %w", topic, err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume from %q in group %q: %w", topic, topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return fmt.Errorf("consume from %q: %w", topic, ferr)
		}
		var got []string
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		if len(got) > 0 {
			if got[0] != want {
				return fmt.Errorf("consume from %q: got %q, want %q", topic, got[0], want)
			}
			// Committing creates __consumer_offsets: proves the group coordinator works.
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				return fmt.Errorf("commit offsets of group %q: %w", topic, err)
			}
			return nil
		}
	}
}

// waitInSync waits until every partition of topic has a leader and want
// replicas in sync: on a cluster, a produce with acks=all before that may
// fail with NOT_ENOUGH_REPLICAS, and a node that is still catching up is
// not yet part of the cluster's redundancy.
func waitInSync(ctx context.Context, adm *kadm.Client, topic string, want int) error {
	var last string
	for {
		tds, err := adm.ListTopics(ctx, topic)
		if err == nil {
			td := tds[topic]
			ok := td.Err == nil && len(td.Partitions) > 0
			for _, p := range td.Partitions.Sorted() {
				if p.Err != nil || p.Leader < 0 || len(p.ISR) < want {
					ok = false
					last = fmt.Sprintf("partition %d: leader %d, in sync %v, want %d replicas", p.Partition, p.Leader, p.ISR, want)
				}
			}
			if ok {
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %q: replicas not in sync: %w (last: %s)", topic, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
