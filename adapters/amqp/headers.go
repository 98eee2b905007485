package amqp

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// toPublishing turns a Watermill message into a persistent AMQP publishing:
// every metadata entry becomes a string header, the UUID becomes MessageId
// and the content-type metadata the ContentType property. Headers RabbitMQ
// writes itself (x-death, x-first-death-*, x-last-death-*,
// x-delivery-count) are not sent back: they describe the delivery that was
// received, and RabbitMQ expects them in its own types.
func toPublishing(msg *message.Message) amqp091.Publishing {
	var headers amqp091.Table
	if len(msg.Metadata) > 0 {
		headers = make(amqp091.Table, len(msg.Metadata))
	}
	return toPublishingInto(msg, headers)
}

// toPublishingInto is toPublishing filling headers (empty, or nil when msg
// has no metadata) instead of a new table.
func toPublishingInto(msg *message.Message, headers amqp091.Table) amqp091.Publishing {
	for k, v := range msg.Metadata {
		if !brokerOwned(k) {
			headers[k] = v
		}
	}
	return publishingOf(msg, headers)
}

// publishingOf is the publishing of msg with headers already converted.
func publishingOf(msg *message.Message, headers amqp091.Table) amqp091.Publishing {
	if len(headers) == 0 {
		headers = nil
	}
	return amqp091.Publishing{
		Headers:      headers,
		ContentType:  msg.Metadata.Get(header.ContentType),
		DeliveryMode: amqp091.Persistent,
		MessageId:    msg.UUID,
		Body:         msg.Payload,
	}
}

// toMessage rebuilds a Watermill message from a delivery. Header names are
// canonicalised ([header.Canonical]); values that are not strings (numbers,
// booleans, timestamps, tables such as x-death, arrays) are rendered in a
// stable string form and never cause an error. The UUID is MessageId, else
// the ce_id header, else a new UUID.
func toMessage(d *amqp091.Delivery) *message.Message {
	md := make(message.Metadata, len(d.Headers)+1)
	for k, v := range d.Headers {
		md[header.Canonical(k)] = headerString(v)
	}
	if d.ContentType != "" && md[header.ContentType] == "" {
		md[header.ContentType] = d.ContentType
	}
	id := d.MessageId
	if id == "" {
		id = md[header.ID]
	}
	if id == "" {
		id = watermill.NewUUID()
	}
	msg := message.NewMessage(id, d.Body)
	msg.Metadata = md
	return msg
}

// headerString renders an AMQP field value as a string. Scalars use their
// natural decimal or RFC 3339 form; tables and arrays are JSON with sorted
// keys, so the same value always gives the same string.
func headerString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case int8:
		return strconv.FormatInt(int64(x), 10)
	case int16:
		return strconv.FormatInt(int64(x), 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case uint8:
		return strconv.FormatUint(uint64(x), 10)
	case uint16:
		return strconv.FormatUint(uint64(x), 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case amqp091.Decimal:
		return decimalString(x)
	case amqp091.Table, []any, map[string]any:
		b, err := json.Marshal(jsonable(x))
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// jsonable converts nested AMQP values into values encoding/json renders in
// the same form as headerString: times as RFC 3339, bytes as text, decimals
// as decimal strings, non-finite floats as strings.
func jsonable(v any) any {
	switch x := v.(type) {
	case amqp091.Table:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case map[string]any:
		return jsonable(amqp091.Table(x))
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = jsonable(e)
		}
		return a
	case []byte, time.Time, amqp091.Decimal:
		return headerString(x)
	case float32:
		return jsonFloat(float64(x))
	case float64:
		return jsonFloat(x)
	}
	return v
}

func jsonFloat(f float64) any {
	if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 { // NaN or ±Inf
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

func decimalString(d amqp091.Decimal) string {
	r := new(big.Rat).SetFrac(big.NewInt(int64(d.Value)), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil))
	return r.FloatString(int(d.Scale))
}

// brokerOwned reports headers that RabbitMQ sets on deliveries.
func brokerOwned(key string) bool {
	return len(key) > 2 && key[0] == 'x' && key[1] == '-' &&
		(key == "x-death" || key == "x-delivery-count" ||
			strings.HasPrefix(key, "x-first-death-") || strings.HasPrefix(key, "x-last-death-"))
}
