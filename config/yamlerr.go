package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	reUnknown  = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	reDuration = regexp.MustCompile("^line (\\d+): cannot unmarshal !!\\w+ `(.*)` into time.Duration$")
	reType     = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// explainYAML rewrites yaml.v3's decoding errors into messages that say
// what was wrong and what is allowed, keeping every one of them.
func explainYAML(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	var out error
	for _, e := range te.Errors {
		out = errors.Join(out, explainOne(e))
	}
	return out
}

func explainOne(msg string) error {
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		allowed := allowedKeys(m[3])
		if len(allowed) > 0 {
			return fmt.Errorf("line %s: unknown key %q, allowed here: %s", m[1], m[2], strings.Join(allowed, ", "))
		}
		return fmt.Errorf("line %s: unknown key %q", m[1], m[2])
	}
	if m := reDuration.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("line %s: %q is not a duration, want a number with a unit such as 250ms, 5s or 2m", m[1], m[2])
	}
	if m := reType.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("line %s: %q is not a valid %s", m[1], m[3], kindName(m[4]))
	}
	return errors.New(msg)
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
// reachable from Config.
func allowedKeys(typeName string) []string {
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
				if k := yamlKey(t.Field(i)); k != "" {
					found = append(found, k)
				}
			}
		}
		for i := range t.NumField() {
			walk(t.Field(i).Type)
		}
	}
	walk(reflect.TypeFor[Config]())
	return found
}

// yamlKey is a field's yaml key, "" for fields yaml skips.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}
