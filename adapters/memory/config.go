package memory

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultBufferSize     = 1024
	DefaultPrefetch       = 64
	DefaultNackBackoff    = 10 * time.Millisecond
	DefaultMaxNackBackoff = time.Second
)

// Config configures the in-memory broker. The zero value means "use the
// defaults"; it is what `broker.memory` holds in a configuration file.
type Config struct {
	// BufferSize is the capacity of each consumer group's queue on each topic,
	// counting messages not yet handed out. Publish blocks while any target
	// queue is full (backpressure). It is also the size of the backlog kept
	// for a topic that no group has subscribed to yet. Default 1024.
	//
	// A group registered by [Broker.Provision] (dead letters kept for
	// operators) is bounded only while a subscription consumes it: nobody
	// would ever make room in it otherwise. Until then it keeps every
	// message, beyond BufferSize, dropping none and blocking no publisher;
	// its memory grows with what it keeps (a warning is logged when it first
	// holds more than BufferSize, and each time that doubles), and is given
	// back as an operator consumes the group.
	BufferSize int `yaml:"buffer_size"`
	// Prefetch is how many unacknowledged messages one Subscribe call may hand
	// out at once. [broker.SubscriberOptions].Prefetch overrides it. Default 64.
	Prefetch int `yaml:"prefetch"`
	// NackBackoff is the delay before a nacked message is redelivered the
	// first time; it doubles on each further Nack of the same message.
	// Default 10ms.
	NackBackoff time.Duration `yaml:"nack_backoff"`
	// MaxNackBackoff caps the redelivery delay after Nack. Default 1s.
	MaxNackBackoff time.Duration `yaml:"max_nack_backoff"`
}

func (c *Config) setDefaults() {
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.NackBackoff == 0 {
		c.NackBackoff = DefaultNackBackoff
	}
	if c.MaxNackBackoff == 0 {
		c.MaxNackBackoff = DefaultMaxNackBackoff
		if c.NackBackoff > c.MaxNackBackoff {
			c.MaxNackBackoff = c.NackBackoff
		}
	}
}

// Validate reports every invalid field at once. Zero values are valid: they
// mean the default.
func (c Config) Validate() error {
	var err error
	if c.BufferSize < 0 {
		err = errors.Join(err, fmt.Errorf("broker.memory.buffer_size: %d, want >= 1 (0 means %d)", c.BufferSize, DefaultBufferSize))
	}
	if c.Prefetch < 0 {
		err = errors.Join(err, fmt.Errorf("broker.memory.prefetch: %d, want >= 1 (0 means %d)", c.Prefetch, DefaultPrefetch))
	}
	if c.NackBackoff < 0 {
		err = errors.Join(err, fmt.Errorf("broker.memory.nack_backoff: %s, want > 0 (0 means %s)", c.NackBackoff, DefaultNackBackoff))
	}
	if c.MaxNackBackoff < 0 {
		err = errors.Join(err, fmt.Errorf("broker.memory.max_nack_backoff: %s, want > 0 (0 means %s)", c.MaxNackBackoff, DefaultMaxNackBackoff))
	}
	if c.NackBackoff > 0 && c.MaxNackBackoff > 0 && c.MaxNackBackoff < c.NackBackoff {
		err = errors.Join(err, fmt.Errorf("broker.memory.max_nack_backoff: %s, want >= broker.memory.nack_backoff (%s)", c.MaxNackBackoff, c.NackBackoff))
	}
	return err
}
