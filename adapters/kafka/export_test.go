package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// WithClientOpts adds franz-go options to every client a Broker opened with
// c makes (admin, producer, consumers): the tests' seam for hooks that
// observe requests, kept out of the public Config.
func WithClientOpts(c *Config, opts ...kgo.Opt) {
	c.testOpts = append(append([]kgo.Opt(nil), c.testOpts...), opts...)
}
