package kafka

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// toMessage turns a record into a watermill message (see recordMessage)
// whose context is a [msgContext].
func (s *subscription) toMessage(st *partState, r *kgo.Record) *message.Message {
	m := recordMessage(r)
	m.SetContext(&msgContext{parent: st.ctx, m: m})
	return m
}

// msgContext is a handed-out message's context: it carries the Subscribe
// context's values and is cancelled once the message is acked or nacked, or
// when the subscription shuts down. It costs one small allocation until Done
// is called; Done starts a real context and one goroutine that cancels it,
// so only messages whose context is watched (or derived from) pay for that.
type msgContext struct {
	parent context.Context // the partition's ctx
	m      *message.Message
	once   sync.Once
	inner  atomic.Pointer[context.Context]
}

func (c *msgContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Revocation is the partition's context (see broker.Revocable): done when
// the partition is revoked and the drain time has passed, or when the
// subscription shuts down. It needs no goroutine, unlike Done.
func (c *msgContext) Revocation() context.Context { return c.parent }

func (c *msgContext) Done() <-chan struct{} {
	c.once.Do(func() {
		ctx, cancel := context.WithCancel(c.parent)
		c.inner.Store(&ctx)
		if _, done := resolved(c.m); done {
			cancel()
			return
		}
		go func() {
			defer cancel()
			select {
			case <-c.m.Acked():
			case <-c.m.Nacked():
			case <-ctx.Done():
			}
		}()
	})
	return (*c.inner.Load()).Done()
}

func (c *msgContext) Err() error {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Err()
	}
	if _, done := resolved(c.m); done {
		return context.Canceled
	}
	return c.parent.Err()
}

// Value answers from the real context once Done started it, so that
// contexts derived from this one register with it directly (the context
// package then needs no goroutine per derived context).
func (c *msgContext) Value(key any) any {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Value(key)
	}
	return c.parent.Value(key)
}

// recordMessage turns a record into a watermill message: UUID from the ce_id
// header (else "<topic>/<partition>/<offset>"), metadata from the headers
// with [header.Canonical] applied, plus topic, partition and offset.
//
// The message's key ([header.Key]) is the ce_partitionkey header, else the
// record key: a producer that is not Switchyard (kafkajs with `key:
// aggregateId`) keys its records and writes no such header.
func recordMessage(r *kgo.Record) *message.Message {
	m := message.NewMessage("", r.Value)
	if len(r.Headers)+3 > 8 { // NewMessage's empty map holds 8 without growing
		m.Metadata = make(message.Metadata, len(r.Headers)+3)
	}
	md := m.Metadata
	// Every header value, the record key and the partition and offset are
	// copied into one string, and the metadata values are slices of it:
	// one allocation per record instead of one per value.
	size := len(r.Key) + 2*20
	for _, h := range r.Headers {
		size += len(h.Value)
	}
	var sb strings.Builder
	sb.Grow(size)
	var ends [16]int // end of each header value in sb, for the first 16
	for i, h := range r.Headers {
		sb.Write(h.Value)
		if i < len(ends) {
			ends[i] = sb.Len()
		}
	}
	sb.Write(r.Key)
	keyEnd := sb.Len()
	var num [20]byte
	sb.Write(strconv.AppendInt(num[:0], int64(r.Partition), 10))
	partEnd := sb.Len()
	sb.Write(strconv.AppendInt(num[:0], r.Offset, 10))
	all := sb.String()
	start := 0
	for i, h := range r.Headers {
		if i < len(ends) {
			md[header.Canonical(h.Key)] = all[start:ends[i]]
			start = ends[i]
		} else {
			md[header.Canonical(h.Key)] = string(h.Value)
		}
	}
	start = keyEnd - len(r.Key)
	if len(r.Key) > 0 && md[header.Key] == "" {
		md[header.Key] = all[start:keyEnd]
	}
	delete(md, MetadataRetryDue)
	delete(md, MetadataRetryUntil)
	md[MetadataTopic] = r.Topic
	md[MetadataPartition] = all[keyEnd:partEnd]
	md[MetadataOffset] = all[partEnd:]
	m.UUID = md[header.ID]
	if m.UUID == "" {
		m.UUID = r.Topic + "/" + md[MetadataPartition] + "/" + md[MetadataOffset]
	}
	return m
}
