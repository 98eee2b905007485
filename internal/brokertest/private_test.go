package brokertest_test

import (
	"net"
	"net/url"
	"testing"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// A private server answers on its own port, comes back after a restart and
// is not the shared one.
func TestPrivateRabbitMQRestarts(t *testing.T) {
	s := brokertest.StartRabbitMQ(t)
	if s.AMQPURL() == brokertest.AMQPURL(t) {
		t.Fatalf("private server shares the shared server's URL %s", s.AMQPURL())
	}
	dial := func() error {
		u, err := url.Parse(s.AMQPURL())
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", u.Host)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("private RabbitMQ at %s: %v", s.AMQPURL(), err)
	}
	s.Stop()
	if dial() == nil {
		t.Fatal("private RabbitMQ still accepts connections after Stop")
	}
	s.Start()
	if err := dial(); err != nil {
		t.Fatalf("private RabbitMQ after Start: %v", err)
	}
}
