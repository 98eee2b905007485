package event

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// Codec turns event values into payload bytes and back.
type Codec interface {
	// ContentType is the media type written to the content-type header.
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: encoding/json, content type application/json.
type JSON struct{}

func (JSON) ContentType() string                { return header.ContentTypeJSON }
func (JSON) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// mediaType strips parameters such as "; charset=utf-8" and lowercases.
func mediaType(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.ToLower(strings.TrimSpace(contentType))
}

// Accepts reports whether a payload with the given content type can be read
// by codec c. An empty content type is taken to be c's (CloudEvents makes the
// attribute optional).
func Accepts(c Codec, contentType string) bool {
	if contentType == "" {
		return true
	}
	mt := mediaType(contentType)
	want := mediaType(c.ContentType())
	if mt == want {
		return true
	}
	// application/cloudevents+json in binary mode and text/json are JSON too.
	return want == header.ContentTypeJSON && (mt == "text/json" || strings.HasSuffix(mt, "+json"))
}

func errContentType(c Codec, got string) error {
	return fmt.Errorf("content type %q cannot be read by the %s codec", got, c.ContentType())
}
