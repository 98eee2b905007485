package asyncapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// Version is the AsyncAPI version of the documents [Generate] writes.
const Version = "3.0.0"

// Binding versions the bindings are written in.
const (
	kafkaBindingVersion = "0.5.0"
	amqpBindingVersion  = "0.3.0"
)

// Generate returns the AsyncAPI 3.0 document of g as indented JSON ending
// in a newline. Event types g does not describe ([graph.Graph.WithEvents])
// get a message without a payload schema, published to the topic named
// after them. A c that does not [Config.Validate] is an error.
func Generate(g *graph.Graph, c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.setDefaults()
	b := &builder{cfg: c, g: g, ids: newIDs(), schemas: newSchemas(), channels: map[string]map[string]any{}}
	if err := b.build(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "->" and "<group>" read better unescaped in a contract
	if err := enc.Encode(b.doc()); err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	return buf.Bytes(), nil
}

type builder struct {
	cfg     Config
	g       *graph.Graph
	ids     *ids
	schemas *schemas

	events     map[string]graph.Event
	messageIDs map[string]string         // event type -> components/messages id
	messages   map[string]any            // components/messages
	channelIDs map[string]string         // topic, or "\x00queue" name -> channel id
	channels   map[string]map[string]any // channel id -> channel object
	operations map[string]any
}

func (b *builder) doc() map[string]any {
	info := map[string]any{"title": b.cfg.Title, "version": b.cfg.Version}
	if b.cfg.Description != "" {
		info["description"] = b.cfg.Description
	}
	d := map[string]any{
		"asyncapi":           Version,
		"info":               info,
		"defaultContentType": header.ContentTypeJSON,
		"channels":           b.channels,
		"operations":         b.operations,
		"components": map[string]any{
			"messages": b.messages,
			"schemas":  b.schemas.byID,
		},
	}
	if s := b.servers(); len(s) > 0 {
		d["servers"] = s
	}
	return d
}

func (b *builder) build() error {
	b.events = map[string]graph.Event{}
	b.messageIDs = map[string]string{}
	b.messages = map[string]any{}
	b.channelIDs = map[string]string{}
	b.operations = map[string]any{}
	for _, e := range b.g.Events() {
		if e.Topic == "" {
			e.Topic = e.Name
		}
		b.events[e.Name] = e
		m, err := b.message(e)
		if err != nil {
			return fmt.Errorf("asyncapi: event %s: %w", e.Name, err)
		}
		id := b.ids.get("message", e.Name)
		b.messageIDs[e.Name] = id
		b.messages[id] = m
	}
	// Channels in a stable order: every event's own topic, then the
	// handlers' topics (ToTopic or inbound mappings may differ), then the
	// queues, all by name.
	handlers := slices.DeleteFunc(b.g.Handlers(), func(h middleware.Info) bool {
		return h.EventType == "" // consumes nothing a document can name
	})
	for i, h := range handlers {
		if h.Topic == "" { // a topology file may leave it out: the runtime's default
			handlers[i].Topic = b.events[h.EventType].Topic
		}
	}
	var topics []string
	for _, e := range b.events {
		topics = append(topics, e.Topic)
	}
	for _, h := range handlers {
		topics = append(topics, h.Topic)
	}
	slices.Sort(topics)
	for _, t := range slices.Compact(topics) {
		b.topicChannel(t)
	}
	for _, e := range b.events {
		b.carry(b.channelIDs[e.Topic], e.Name)
	}
	for _, h := range handlers {
		b.carry(b.channelIDs[h.Topic], h.EventType)
	}
	if b.cfg.AMQP != nil {
		for _, h := range handlers {
			b.queueChannel(h.Topic, h.Group)
		}
	}

	for _, h := range handlers {
		ch := b.channelIDs[h.Topic]
		if b.cfg.AMQP != nil {
			ch = b.channelIDs["\x00"+b.queueName(h.Topic, h.Group)]
		}
		op := map[string]any{
			"action":   "receive",
			"summary":  fmt.Sprintf("Handler %s (consumer group %s) consumes %s.", h.Name, h.Group, h.EventType),
			"channel":  ref("#/channels/" + ch),
			"messages": []any{ref("#/channels/" + ch + "/messages/" + b.messageIDs[h.EventType])},
		}
		if bind := b.receiveBindings(h.Group); bind != nil {
			op["bindings"] = bind
		}
		b.operations[b.ids.get("operation", h.Name)] = op
	}
	for _, h := range handlers {
		declared := slices.Clone(h.Publishes)
		slices.Sort(declared)
		for _, p := range slices.Compact(declared) {
			if p == "" {
				continue // declares nothing
			}
			e := b.events[p]
			ch := b.channelIDs[e.Topic]
			op := map[string]any{
				"action":   "send",
				"summary":  fmt.Sprintf("Handler %s may publish %s (service.Publishes).", h.Name, p),
				"channel":  ref("#/channels/" + ch),
				"messages": []any{ref("#/channels/" + ch + "/messages/" + b.messageIDs[p])},
			}
			if b.cfg.AMQP != nil {
				op["bindings"] = map[string]any{"amqp": map[string]any{"deliveryMode": 2, "bindingVersion": amqpBindingVersion}}
			}
			b.operations[b.ids.get("operation", h.Name+".send."+p)] = op
		}
	}
	return nil
}

// message is the components/messages entry of an event type.
func (b *builder) message(e graph.Event) (map[string]any, error) {
	m := map[string]any{
		"name":        e.Name,
		"title":       e.Name,
		"contentType": header.ContentTypeJSON,
		"headers":     messageHeaders(e.Name, e.Version),
		"correlationId": map[string]any{
			"location":    "$message.header#/" + header.CorrelationID,
			"description": "Id of the event that started the chain; missing means this event's id.",
		},
	}
	if e.Version > 0 {
		m["summary"] = fmt.Sprintf("%s, schema version %d.", e.Name, e.Version)
	}
	if len(e.Schema) > 0 {
		p, err := b.schemas.payload(e.Schema)
		if err != nil {
			return nil, err
		}
		m["payload"] = p
	}
	if e.Keyed && b.cfg.Kafka != nil {
		m["bindings"] = map[string]any{"kafka": map[string]any{
			"key": map[string]any{
				"type":        "string",
				"description": "The event's key (aggregate id), also in the " + header.Key + " header: the partition key.",
			},
			"bindingVersion": kafkaBindingVersion,
		}}
	}
	return m, nil
}

// topicChannel adds the channel of a topic: on RabbitMQ its exchange.
func (b *builder) topicChannel(topic string) {
	id := b.ids.get("channel", topic)
	b.channelIDs[topic] = id
	ch := map[string]any{"address": topic, "messages": map[string]any{}}
	bind := map[string]any{}
	if k := b.cfg.Kafka; k != nil {
		kb := map[string]any{"topic": topic, "bindingVersion": kafkaBindingVersion}
		if k.Partitions > 0 {
			kb["partitions"] = k.Partitions
		}
		if k.Replicas > 0 {
			kb["replicas"] = k.Replicas
		}
		bind["kafka"] = kb
	}
	if a := b.cfg.AMQP; a != nil {
		ch["address"] = a.ExchangePrefix + topic
		ch["description"] = "Durable fanout exchange of topic " + topic + "; each consumer group binds a queue of its own."
		bind["amqp"] = map[string]any{
			"is": "routingKey",
			"exchange": map[string]any{
				"name": a.ExchangePrefix + topic, "type": "fanout", "durable": true, "autoDelete": false, "vhost": a.VHost,
			},
			"bindingVersion": amqpBindingVersion,
		}
	}
	if len(bind) > 0 {
		ch["bindings"] = bind
	}
	b.channels[id] = ch
}

func (b *builder) queueName(topic, group string) string {
	return b.cfg.AMQP.QueuePrefix + topic + "." + group
}

// queueChannel adds the channel of a consumer group's queue on RabbitMQ,
// carrying every message of its topic (the exchange fans them all out).
func (b *builder) queueChannel(topic, group string) {
	name := b.queueName(topic, group)
	if _, ok := b.channelIDs["\x00"+name]; ok {
		return
	}
	id := b.ids.get("channel", name)
	b.channelIDs["\x00"+name] = id
	a := b.cfg.AMQP
	b.channels[id] = map[string]any{
		"address":     name,
		"description": "Queue of consumer group " + group + ", bound to the exchange " + a.ExchangePrefix + topic + ".",
		"messages":    b.channels[b.channelIDs[topic]]["messages"],
		"bindings": map[string]any{"amqp": map[string]any{
			"is": "queue",
			"queue": map[string]any{
				"name": name, "durable": true, "exclusive": false, "autoDelete": false, "vhost": a.VHost,
			},
			"bindingVersion": amqpBindingVersion,
		}},
	}
}

// carry lists event type's message on a channel.
func (b *builder) carry(channelID, eventType string) {
	msgs := b.channels[channelID]["messages"].(map[string]any)
	id := b.messageIDs[eventType]
	msgs[id] = ref("#/components/messages/" + id)
}

func (b *builder) receiveBindings(group string) map[string]any {
	bind := map[string]any{}
	if b.cfg.Kafka != nil {
		bind["kafka"] = map[string]any{
			"groupId":        map[string]any{"type": "string", "enum": []any{group}},
			"bindingVersion": kafkaBindingVersion,
		}
	}
	if b.cfg.AMQP != nil {
		bind["amqp"] = map[string]any{"ack": true, "bindingVersion": amqpBindingVersion}
	}
	if len(bind) == 0 {
		return nil
	}
	return bind
}

func (b *builder) servers() map[string]any {
	out := map[string]any{}
	count := map[string]int{}
	for _, s := range b.cfg.Servers {
		count[s.Protocol]++
	}
	seen := map[string]int{}
	for _, s := range b.cfg.Servers {
		id := s.ID
		if id == "" {
			seen[s.Protocol]++
			id = s.Protocol
			if count[s.Protocol] > 1 {
				id += "-" + strconv.Itoa(seen[s.Protocol])
			}
		}
		e := map[string]any{"host": s.Host, "protocol": s.Protocol}
		if s.Pathname != "" {
			e["pathname"] = s.Pathname
		}
		if s.Description != "" {
			e["description"] = s.Description
		}
		out[b.ids.get("server", id)] = e
	}
	return out
}

func ref(to string) map[string]any { return map[string]any{"$ref": to} }
