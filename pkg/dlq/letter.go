package dlq

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// Letter is one dead letter: the failure metadata read from its headers,
// every header, and the payload.
type Letter struct {
	// Topic is the dead-letter topic it is kept on.
	Topic string `json:"topic"`
	// ID is the message id (the event id).
	ID string `json:"id"`
	// Type and Key are the event type and key, when the message had them.
	Type string `json:"type,omitempty"`
	Key  string `json:"key,omitempty"`
	// Handler, Group and OriginalTopic say who gave up on it, where it was
	// consumed from.
	Handler       string `json:"handler,omitempty"`
	Group         string `json:"group,omitempty"`
	OriginalTopic string `json:"original_topic,omitempty"`
	// Reason is the machine-readable failure reason, Error the error chain.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Attempts made before giving up; 0 when unknown.
	Attempts int `json:"attempts,omitempty"`
	// FirstFailure and FailedAt (the last failure) bound the failing
	// attempts; FailedAt falls back to the event time.
	FirstFailure time.Time `json:"first_failure,omitzero"`
	FailedAt     time.Time `json:"failed_at,omitzero"`
	// Replays counts how often an operator replayed it already.
	Replays int `json:"replays,omitempty"`
	// Headers are every header of the message, failure headers included.
	Headers map[string]string `json:"headers"`
	// Payload is the message body as published.
	Payload []byte `json:"payload"`
}

// NewLetter reads dead letter m kept on topic.
func NewLetter(topic string, m *message.Message) Letter {
	md := m.Metadata
	l := Letter{
		Topic: topic, ID: m.UUID, Type: md.Get(header.Type), Key: md.Get(header.Key),
		Handler: md.Get(header.DeadLetterHandler), Group: md.Get(header.DeadLetterGroup),
		OriginalTopic: md.Get(header.DeadLetterTopic), Reason: md.Get(header.DeadLetterReason),
		Error: md.Get(header.DeadLetterError), FailedAt: FailedAt(m),
		Headers: maps.Clone(map[string]string(md)), Payload: slices.Clone(m.Payload),
	}
	if l.Headers == nil {
		l.Headers = map[string]string{}
	}
	l.Attempts, _ = strconv.Atoi(md.Get(header.DeadLetterAttempts))
	l.Replays, _ = strconv.Atoi(md.Get(header.ReplayCount))
	l.FirstFailure, _ = time.Parse(time.RFC3339Nano, md.Get(header.DeadLetterFirstFailure))
	return l
}

// Message rebuilds the dead letter as a message, e.g. to match it with a
// [Filter].
func (l Letter) Message() *message.Message {
	m := message.NewMessage(l.ID, slices.Clone(l.Payload))
	maps.Copy(m.Metadata, l.Headers)
	return m
}

// Summary counts the dead letters of one topic per handler, group and
// reason.
type Summary struct {
	Topic string `json:"topic"`
	// Count is how many dead letters matched the filter.
	Count int `json:"count"`
	// Groups are the counts per handler, group and reason, largest first.
	Groups []Count `json:"by_handler_reason"`
	// Letters are the matching dead letters, oldest first as the broker
	// keeps them; nil unless asked for.
	Letters []Letter `json:"letters,omitempty"`
}

// Count is how many dead letters one handler of one group gave up on for
// one reason, and when.
type Count struct {
	Handler string    `json:"handler"`
	Group   string    `json:"group"`
	Reason  string    `json:"reason"`
	Count   int       `json:"count"`
	Oldest  time.Time `json:"oldest"`
	Newest  time.Time `json:"newest"`
}

// summarize counts letters of topic; keep says whether to keep them too.
func summarize(topic string, letters []Letter, keep bool) Summary {
	s := Summary{Topic: topic, Count: len(letters), Groups: []Count{}}
	idx := map[[3]string]int{}
	for _, l := range letters {
		k := [3]string{l.Handler, l.Group, l.Reason}
		i, ok := idx[k]
		if !ok {
			i = len(s.Groups)
			idx[k] = i
			s.Groups = append(s.Groups, Count{Handler: k[0], Group: k[1], Reason: k[2]})
		}
		g := &s.Groups[i]
		g.Count++
		if g.Oldest.IsZero() || l.FailedAt.Before(g.Oldest) {
			g.Oldest = l.FailedAt
		}
		if l.FailedAt.After(g.Newest) {
			g.Newest = l.FailedAt
		}
	}
	slices.SortFunc(s.Groups, func(x, y Count) int {
		if x.Count != y.Count {
			return y.Count - x.Count
		}
		return strings.Compare(x.Handler+"\x00"+x.Group+"\x00"+x.Reason, y.Handler+"\x00"+y.Group+"\x00"+y.Reason)
	})
	if keep {
		s.Letters = letters
	}
	return s
}
