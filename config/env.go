package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "SWITCHYARD_"

var durationType = reflect.TypeFor[time.Duration]()

// applyEnv sets every scalar field whose environment variable is present.
// Maps (handlers) are not reachable from the environment.
func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	return setFromEnv(reflect.ValueOf(c).Elem(), nil, lookup)
}

func setFromEnv(v reflect.Value, path []string, lookup func(string) (string, bool)) error {
	t := v.Type()
	var errs error
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		fv := v.Field(i)
		p := append(path[:len(path):len(path)], key)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			errs = errors.Join(errs, setFromEnv(fv, p, lookup))
			continue
		}
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(strings.Join(p, "_"), ".", "_"))
		raw, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setScalar(fv, raw); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s (%s): %w", name, strings.Join(p, "."), err))
		}
	}
	return errs
}

func setScalar(v reflect.Value, raw string) error {
	raw = strings.TrimSpace(raw)
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration, want a number with a unit such as 250ms, 5s or 2m", raw)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer: // a tri-state setting such as ordered: set means set
		elem := reflect.New(v.Type().Elem())
		if err := setScalar(elem.Elem(), raw); err != nil {
			return err
		}
		v.Set(elem)
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not a boolean, want true or false", raw)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		v.SetInt(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(raw, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		v.SetFloat(n)
	case reflect.Slice:
		parts := strings.Split(raw, ",")
		s := reflect.MakeSlice(v.Type(), 0, len(parts))
		for _, part := range parts {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := setScalar(elem, part); err != nil {
				return err
			}
			s = reflect.Append(s, elem)
		}
		v.Set(s)
	default:
		return fmt.Errorf("cannot be set from the environment (type %s)", v.Type())
	}
	return nil
}
