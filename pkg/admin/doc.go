// Package admin is a running service's admin API: an [http.Handler] that
// the operations server (package ops) mounts under /admin/ when
// http.admin.enabled is set. It tells an operator what the service runs
// (its handlers with their real semantics, its subscriptions and their
// state, its counters, its AsyncAPI document) and runs the dead-letter
// operations of package dlq on the service's own broker, which is how the
// in-memory broker is reached at all.
//
// # Access
//
// Every request needs "Authorization: Bearer <token>" with the configured
// token: without one the answer is 401, with another 403. Reads are GETs;
// the operations that change something (replay, purge, release, pause and
// resume of a handler) are POSTs, refused with 403 unless
// http.admin.write is true.
//
// # Dashboard
//
// Under [UIPrefix] (/admin/ui/) the same handler serves a web dashboard:
// static HTML, CSS and JavaScript embedded from ui/, served without the
// token because they hold no data. The page asks for the token and calls
// the JSON API with it; /admin/info and /admin/graph exist for it.
//
// [Client] is the Go client of the API; the operator CLI uses it for
// `switchyard --service URL dlq ...`.
package admin
