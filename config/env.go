package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "SWITCHYARD_"

// ToolingEnv lists the variables starting with [EnvPrefix] that are not
// configuration: the project's scripts, test suites and tools read them, so
// they are allowed beside the configuration's own. Every other SWITCHYARD_
// variable that names no setting is an error.
var ToolingEnv = []string{
	"SWITCHYARD_CONFIG",                        // the CLI's default --config
	"SWITCHYARD_WORK",                          // scripts/up.sh: where servers keep their data
	"SWITCHYARD_CACHE",                         // scripts: downloaded packages
	"SWITCHYARD_AMQP_PORT",                     // scripts: RabbitMQ port
	"SWITCHYARD_KAFKA_PORT",                    // scripts: Kafka port
	"SWITCHYARD_KAFKA_CONTROLLER_PORT",         // scripts: Kafka KRaft controller port
	"SWITCHYARD_POSTGRES_PORT",                 // scripts: PostgreSQL port
	"SWITCHYARD_CLUSTER_KAFKA_PORT",            // scripts/cluster.sh: first Kafka node's port
	"SWITCHYARD_CLUSTER_KAFKA_CONTROLLER_PORT", // scripts/cluster.sh: first controller port
	"SWITCHYARD_CLUSTER_AMQP_PORT",             // scripts/cluster.sh: first RabbitMQ node's port
	"SWITCHYARD_CLUSTER_KAFKA_HEAP",            // scripts/cluster.sh: heap of each Kafka node
	"SWITCHYARD_BENCH_CPUPROFILE",              // switchyard-bench
	"SWITCHYARD_BENCH_MEMPROFILE",              // switchyard-bench
	ToolingEnvTestPrefix + "<anything>",        // the test suites' broker addresses and switches
}

// ToolingEnvTestPrefix starts variables of the test suites (broker
// addresses, debug switches); every name with it is allowed.
const ToolingEnvTestPrefix = "SWITCHYARD_TEST_"

// Prefixes of the sections reached by rules rather than by fixed names.
const (
	envHandlers = EnvPrefix + "HANDLERS_"
	envApp      = EnvPrefix + "APP_"
)

func isToolingEnv(name string) bool {
	return strings.HasPrefix(name, ToolingEnvTestPrefix) || slices.Contains(ToolingEnv[:len(ToolingEnv)-1], name)
}

var durationType = reflect.TypeFor[time.Duration]()

// envName is the variable of a setting's path.
func envName(path []string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(strings.Join(path, "_"), ".", "_"))
}

// envFields lists every scalar setting of struct type t reachable from the
// environment, by variable name, with its path. Maps are not reachable.
func envFields(t reflect.Type, path []string, out map[string][]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		key := yamlKey(f)
		if key == "" {
			continue
		}
		p := append(path[:len(path):len(path)], key)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			envFields(f.Type, p, out)
		case f.Type.Kind() == reflect.Map:
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
		default:
			out[envName(p)] = p
		}
	}
}

// configEnv is envFields of Config, without the handlers, topics and app
// sections, which have rules of their own.
var configEnv = func() map[string][]string {
	m := map[string][]string{}
	envFields(reflect.TypeFor[Config](), nil, m)
	return m
}()

// policyKeys maps the handler-variable key (CONCURRENCY, RETRY_MAX_ATTEMPTS)
// to its path inside a handler's policy.
var policyKeys = func() map[string][]string {
	m := map[string][]string{}
	envFields(reflect.TypeFor[service.Policy](), nil, m)
	out := make(map[string][]string, len(m))
	for name, p := range m {
		out[strings.TrimPrefix(name, EnvPrefix)] = p
	}
	return out
}()

// applyEnv sets every scalar field whose environment variable is present,
// reporting every bad value at once.
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
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			errs = errors.Join(errs, setFromEnv(fv, p, lookup))
			continue
		case f.Type.Kind() == reflect.Map:
			continue
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			continue
		}
		name := envName(p)
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

// HandlerEnvName is the prefix of the variables that override the settings
// of the handler named name: SWITCHYARD_HANDLERS_ plus the name in upper
// case with every "." written "_" and every "-" written "__"; the setting's
// key follows (CONCURRENCY, TIMEOUT, RETRY_MAX_ATTEMPTS). Other characters
// than letters, digits, ".", "-" become "_" too: such a handler is reached
// from the environment only when the file names it under handlers.
func HandlerEnvName(name string) string {
	var b strings.Builder
	b.WriteString(envHandlers)
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-':
			b.WriteString("__")
		default:
			b.WriteByte('_')
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// handlerFromEnv is the handler name a variable's name part stands for
// when the file names no handler that maps to it: lower case, "__" read as
// "-", "_" as ".".
func handlerFromEnv(part string) string {
	s := strings.ToLower(part)
	s = strings.ReplaceAll(s, "__", "\x00")
	s = strings.ReplaceAll(s, "_", ".")
	return strings.ReplaceAll(s, "\x00", "-")
}

// splitHandlerEnv splits what follows SWITCHYARD_HANDLERS_ into the name
// part and the setting's key, taking the longest key it ends with.
func splitHandlerEnv(rest string) (part, key string, ok bool) {
	for k := range policyKeys {
		if len(rest) > len(k)+1 && strings.HasSuffix(rest, "_"+k) && len(k) > len(key) {
			part, key, ok = rest[:len(rest)-len(k)-1], k, true
		}
	}
	return part, key, ok
}

// applyHandlerEnv applies the SWITCHYARD_HANDLERS_<NAME>_<KEY> variables
// of env to c.Handlers. It reports variables that name no setting.
func applyHandlerEnv(c *Config, env map[string]string) error {
	var errs error
	for _, name := range slices.Sorted(maps.Keys(env)) {
		if !strings.HasPrefix(name, envHandlers) {
			continue
		}
		part, key, ok := splitHandlerEnv(strings.TrimPrefix(name, envHandlers))
		if !ok {
			errs = errors.Join(errs, unknownEnv(name, nil))
			continue
		}
		var matches []string
		for h := range c.Handlers {
			if HandlerEnvName(h) == envHandlers+part {
				matches = append(matches, h)
			}
		}
		slices.Sort(matches)
		handler := handlerFromEnv(part)
		switch len(matches) {
		case 0:
		case 1:
			handler = matches[0]
		default:
			errs = errors.Join(errs, fmt.Errorf("%s: names more than one handler of the file: %s; rename one", name, strings.Join(matches, ", ")))
			continue
		}
		if c.Handlers == nil {
			c.Handlers = map[string]service.Policy{}
		}
		p := c.Handlers[handler]
		path := policyKeys[key]
		if err := setScalar(fieldByPath(reflect.ValueOf(&p).Elem(), path), env[name]); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s (handlers.%s.%s): %w", name, handler, strings.Join(path, "."), err))
			continue
		}
		c.Handlers[handler] = p
	}
	return errs
}

// fieldByPath is the field of struct v at the yaml path.
func fieldByPath(v reflect.Value, path []string) reflect.Value {
	for _, key := range path {
		t := v.Type()
		for i := range t.NumField() {
			if yamlKey(t.Field(i)) == key {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

// checkEnvNames reports every variable of env that starts with EnvPrefix
// and names no setting, naming the nearest valid variable. app lists the
// app section's variables (nil: not checked, the caller has no app struct).
func checkEnvNames(env map[string]string, app map[string][]string) error {
	var errs error
	for _, name := range slices.Sorted(maps.Keys(env)) {
		switch {
		case !strings.HasPrefix(name, EnvPrefix), isToolingEnv(name), strings.HasPrefix(name, envHandlers):
			continue
		case configEnv[name] != nil:
			continue
		case strings.HasPrefix(name, envApp):
			if app == nil || app[name] != nil {
				continue
			}
		}
		errs = errors.Join(errs, unknownEnv(name, app))
	}
	return errs
}

// unknownEnv is the error of a variable that names no setting.
func unknownEnv(name string, app map[string][]string) error {
	best, bestD := "", -1
	try := func(cand string) {
		if d := distance(name, cand); bestD < 0 || d < bestD {
			best, bestD = cand, d
		}
	}
	for cand := range configEnv {
		try(cand)
	}
	for cand := range app {
		try(cand)
	}
	for _, cand := range ToolingEnv[:len(ToolingEnv)-1] {
		try(cand)
	}
	if rest, ok := strings.CutPrefix(name, envHandlers); ok {
		// Try every split of the name part against every key.
		for i := 0; i <= len(rest); i++ {
			if i < len(rest) && rest[i] != '_' {
				continue
			}
			for k := range policyKeys {
				if i > 0 {
					try(envHandlers + rest[:i] + "_" + k)
				}
			}
		}
	}
	msg := fmt.Sprintf("%s: no such setting; did you mean %s?", name, best)
	if strings.HasPrefix(name, envHandlers) {
		msg += " (handler variables are " + envHandlers + "<NAME>_<KEY>, see docs/configuration.md)"
	}
	return errors.New(msg)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number >= 0", raw)
		}
		v.SetUint(n)
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
