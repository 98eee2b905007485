// Package eventschema derives the JSON Schema of an event's payload from its
// Go type, so that the contract other services read (AsyncAPI, topology
// files) is the code's own and cannot drift from it.
//
// The schema describes what the JSON codec writes: field names from `json`
// tags, a field without `omitempty` required, nested named types under
// "$defs" named "<package>.<Type>". Unknown properties are allowed, because
// adding a field is a compatible change for Switchyard's consumers and the
// schema should not forbid what the version policy permits.
//
// It uses github.com/invopop/jsonschema for the reflection, which knows the
// encoding/json rules (embedded structs, "-", "string" options, time.Time,
// json.Marshaler) that a hand-written walker would have to relearn.
package eventschema
