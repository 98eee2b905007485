package kafka

import (
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// recordMessage slices every metadata value out of one string: each value
// must still be its own header's, with many headers and with few.
func TestRecordMessageMetadata(t *testing.T) {
	for _, n := range []int{0, 3, 16, 17, 25} {
		r := &kgo.Record{Topic: "t", Partition: 7, Offset: 123456789, Key: []byte("the-key"), Value: []byte("v")}
		for i := range n {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "h" + strconv.Itoa(i), Value: []byte("value-" + strconv.Itoa(i))})
		}
		m := recordMessage(r)
		for i := range n {
			if got, want := m.Metadata.Get("h"+strconv.Itoa(i)), "value-"+strconv.Itoa(i); got != want {
				t.Errorf("%d headers: h%d = %q, want %q", n, i, got, want)
			}
		}
		for k, want := range map[string]string{header.Key: "the-key", MetadataPartition: "7", MetadataOffset: "123456789", MetadataTopic: "t"} {
			if got := m.Metadata.Get(k); got != want {
				t.Errorf("%d headers: %s = %q, want %q", n, k, got, want)
			}
		}
		if m.UUID != "t/7/123456789" {
			t.Errorf("%d headers: UUID %q", n, m.UUID)
		}
	}
}
