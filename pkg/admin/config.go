package admin

import (
	"errors"
	"fmt"
)

// MinTokenLength is the shortest token accepted: a bearer token is the
// only thing between the network and purging dead letters.
const MinTokenLength = 16

// Config is the http.admin section of a configuration file. The zero value
// means no admin API.
type Config struct {
	// Enabled serves the admin API under /admin/ on the operations server.
	// Default false.
	Enabled bool `yaml:"enabled"`
	// Token is the bearer token every request must carry; required when
	// Enabled, at least MinTokenLength characters. Prefer the environment
	// variable SWITCHYARD_HTTP_ADMIN_TOKEN to a file.
	Token string `yaml:"token"`
	// Write allows the operations that change something: replay, purge,
	// release. Default false: read-only.
	Write bool `yaml:"write"`
}

// Validate reports every invalid field at once; prefix names the section,
// e.g. "http.admin". It never prints the token.
func (c Config) Validate(prefix string) error {
	if !c.Enabled {
		if c.Write {
			return fmt.Errorf("%s.write: true, but %s.enabled is false: write needs the admin API", prefix, prefix)
		}
		return nil
	}
	var err error
	switch n := len(c.Token); {
	case n == 0:
		err = errors.Join(err, fmt.Errorf("%s.token: required when %s.enabled is true (or set SWITCHYARD_HTTP_ADMIN_TOKEN)", prefix, prefix))
	case n < MinTokenLength:
		err = errors.Join(err, fmt.Errorf("%s.token: %d characters, want at least %d", prefix, n, MinTokenLength))
	}
	return err
}
