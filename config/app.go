package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"

	"gopkg.in/yaml.v3"
)

// appValue is the struct app points to; the zero Value when app is nil.
func appValue(app any) (reflect.Value, error) {
	if app == nil {
		return reflect.Value{}, nil
	}
	v := reflect.ValueOf(app)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config: app: %T, want a non-nil pointer to a struct", app)
	}
	return v.Elem(), nil
}

// decodeApp decodes the app section of data into app, refusing unknown
// keys. It decodes the whole document into a struct whose app field points
// to app and whose other keys are absorbed, so that errors keep the file's
// line numbers.
func decodeApp(data []byte, app reflect.Value, idx pathIndex, roots []reflect.Type) error {
	wrapper := reflect.StructOf([]reflect.StructField{
		{Name: "App", Type: reflect.PointerTo(app.Type()), Tag: `yaml:"app"`},
		{Name: "Rest", Type: reflect.TypeFor[map[string]yaml.Node](), Tag: `yaml:",inline"`},
	})
	w := reflect.New(wrapper)
	w.Elem().Field(0).Set(app.Addr())
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(w.Interface()); err != nil && !errors.Is(err, io.EOF) {
		return explainYAML(err, idx, roots...)
	}
	return nil
}
