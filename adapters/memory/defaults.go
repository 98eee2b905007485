package memory

// WithDefaults returns c with every zero field set to its documented
// default, as [New] applies them; `switchyard config show` prints that.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}
