package asyncapi

import (
	"regexp"
	"slices"
	"strconv"
)

// ids hands out the keys of channels, operations, messages and servers:
// AsyncAPI allows letters, digits, ".", "-" and "_", and a key must not be
// given twice, so a name that sanitizes to a taken key is numbered.
type ids struct{ taken map[string]bool }

func newIDs() *ids { return &ids{taken: map[string]bool{}} }

func (s *ids) get(kind, name string) string {
	base := sanitize(name)
	id := base
	for n := 2; s.taken[kind+"\x00"+id]; n++ {
		id = base + "_" + strconv.Itoa(n)
	}
	s.taken[kind+"\x00"+id] = true
	return id
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func sanitize(name string) string {
	if name == "" {
		return "_"
	}
	return unsafe.ReplaceAllString(name, "_")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
