package amqp

// WithDefaults returns c with every zero field set to its documented
// default, as [New] applies them; the config layer validates that.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}
