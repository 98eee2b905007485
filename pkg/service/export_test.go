package service

// CancelGrace is how long Run waits for handlers after the shutdown timeout
// cancelled their context, for tests that bound Run's shutdown.
const CancelGrace = cancelGrace
