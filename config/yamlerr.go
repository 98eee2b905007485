package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	reUnknown  = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (.+)$`)
	reDuration = regexp.MustCompile("^line (\\d+): cannot unmarshal !!\\w+ `(.*)` into time.Duration$")
	reType     = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// explainYAML rewrites yaml.v3's decoding errors into messages that say
// where (line and field path), what was wrong and what is allowed, keeping
// every one of them. idx locates the document's keys and values; roots are
// the types whose keys an unknown-key error lists.
func explainYAML(err error, idx pathIndex, roots ...reflect.Type) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	var out error
	for _, e := range te.Errors {
		out = errors.Join(out, explainOne(e, idx, roots))
	}
	return out
}

func explainOne(msg string, idx pathIndex, roots []reflect.Type) error {
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		where := "line " + m[1]
		if p := idx.key(m[1], m[2]); p != "" {
			where += ": " + p
		}
		allowed := allowedKeys(m[3], roots)
		if len(allowed) > 0 {
			return fmt.Errorf("%s: unknown key %q, allowed here: %s", where, m[2], strings.Join(allowed, ", "))
		}
		return fmt.Errorf("%s: unknown key %q", where, m[2])
	}
	if m := reDuration.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s: %q is not a duration, want a number with a unit such as 250ms, 5s or 2m", idx.where(m[1], m[2]), m[2])
	}
	if m := reType.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s: %q is not a valid %s", idx.where(m[1], m[3]), m[3], kindName(m[4]))
	}
	return errors.New(msg)
}

// pathIndex locates a document's keys and scalar values by line, with
// their field paths (handlers.inventory.retry.max_attempts).
type pathIndex []located

type located struct {
	line       int
	key, value string // key is set on a mapping key, value on a scalar value
	path       string
}

// indexYAML builds the index of data; nil if it does not parse.
func indexYAML(data []byte) pathIndex {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	var idx pathIndex
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				idx = append(idx, located{line: k.Line, key: k.Value, path: p})
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, path+"["+strconv.Itoa(i)+"]")
			}
		case yaml.ScalarNode:
			idx = append(idx, located{line: n.Line, value: n.Value, path: path})
		}
	}
	walk(&doc, "")
	return idx
}

// key is the path of the key named name on line.
func (idx pathIndex) key(line, name string) string {
	for _, l := range idx {
		if strconv.Itoa(l.line) == line && l.key == name {
			return l.path
		}
	}
	return ""
}

// where is "line N: path" for the scalar value on line, or "line N" when
// it cannot be told apart.
func (idx pathIndex) where(line, value string) string {
	var paths []string
	for _, l := range idx {
		if strconv.Itoa(l.line) == line && l.key == "" && l.value == value {
			paths = append(paths, l.path)
		}
	}
	if len(paths) == 1 {
		return "line " + line + ": " + paths[0]
	}
	return "line " + line
}

func kindName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "whole number"
	case strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "bool":
		return "boolean (true or false)"
	case strings.HasPrefix(goType, "[]"):
		return "list"
	case strings.HasPrefix(goType, "map"):
		return "mapping"
	}
	return goType
}

// allowedKeys lists the yaml keys of the named struct type among the types
// reachable from roots.
func allowedKeys(typeName string, roots []reflect.Type) []string {
	var found []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		if t.String() == typeName && found == nil {
			for i := range t.NumField() {
				if k := yamlKey(t.Field(i)); k != "" && !t.Field(i).Anonymous {
					found = append(found, k)
				}
			}
		}
		for i := range t.NumField() {
			walk(t.Field(i).Type)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return found
}

// yamlKey is a field's yaml key, "" for fields yaml skips or inlines.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" || strings.Contains(opts, "inline") {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}
