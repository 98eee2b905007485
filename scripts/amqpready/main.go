// Command amqpready waits until a RabbitMQ cluster serves a quorum queue,
// the readiness check behind scripts/cluster.sh.
//
// Usage:
//
//	go run ./scripts/amqpready -urls amqp://guest:guest@127.0.0.1:5701/,... [-timeout 120s]
//
// It connects to every node, declares a throwaway quorum queue on the
// first, publishes one message to it with a publisher confirm there, reads
// it back through the last node and deletes the queue. It exits 0 once
// that worked, 1 when the timeout passes first. A node that runs but has
// not joined the cluster, or a cluster that cannot elect a quorum queue
// leader, fails it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func main() {
	urls := flag.String("urls", "amqp://guest:guest@127.0.0.1:5672/", "comma-separated AMQP URLs, one per node")
	timeout := flag.Duration("timeout", 120*time.Second, "how long to wait for the cluster")
	quiet := flag.Bool("q", false, "print nothing on success")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	list := strings.Split(*urls, ",")
	var last error
	for {
		last = roundTrip(list)
		if last == nil {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "amqpready: %d node(s): not ready after %s: %v\n", len(list), *timeout, last)
			os.Exit(1)
		case <-time.After(time.Second):
		}
	}
	if !*quiet {
		fmt.Printf("amqpready: %d node(s) serve a quorum queue\n", len(list))
	}
}

func roundTrip(urls []string) error {
	conns := make([]*amqp091.Connection, 0, len(urls))
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for _, u := range urls {
		c, err := amqp091.DialConfig(u, amqp091.Config{Dial: amqp091.DefaultDial(5 * time.Second)})
		if err != nil {
			return fmt.Errorf("connect to node %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	first, err := conns[0].Channel()
	if err != nil {
		return err
	}
	defer first.Close()
	q := fmt.Sprintf("amqpready-%d", time.Now().UnixNano())
	if _, err := first.QueueDeclare(q, true, false, false, false, amqp091.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("declare quorum queue: %w", err)
	}
	defer func() {
		if ch, err := conns[0].Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}()
	if err := first.Confirm(false); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := first.PublishWithDeferredConfirmWithContext(pctx, "", q, true, false, amqp091.Publishing{Body: []byte("ready")})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	ok, err := dc.WaitContext(pctx)
	if err != nil || !ok {
		return errors.Join(errors.New("publish not confirmed"), err)
	}
	last, err := conns[len(conns)-1].Channel()
	if err != nil {
		return err
	}
	defer last.Close()
	for range 50 {
		m, got, err := last.Get(q, true)
		if err != nil {
			return fmt.Errorf("get through the last node: %w", err)
		}
		if got {
			if string(m.Body) != "ready" {
				return fmt.Errorf("got %q, want %q", m.Body, "ready")
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the message published on the first node is not served by the last")
}
