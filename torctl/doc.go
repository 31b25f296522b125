// Package torctl is a small client for tor's control port.
//
// It speaks the control protocol of tor's control-spec.txt (version 1) well
// enough to feed a privstats collector from a stock or PrivCount-patched tor:
//
//   - [Reader] reads whole replies (mid "250-", data "250+" and end "250 "
//     lines, with dot-unescaped data blocks) with bounded line and reply
//     sizes, and names the offending line in every error.
//   - [Conn] dials tor over TCP or a Unix socket, authenticates
//     (SAFECOOKIE, COOKIE, HASHEDPASSWORD or NULL), runs commands one at a
//     time and hands asynchronous 650 events to a handler while commands run.
//   - [Session] keeps a Conn alive: it reconnects with capped, jittered
//     exponential backoff and records every period in which it could not
//     have seen events as a [Gap], so a collector can report its own outages.
//   - ParseBW, ParseORConn, ParseConnBW, ParseCirc, ParseStream and the other
//     Parse functions turn one event line into a caller-owned struct without
//     allocating: fields are sub-slices of the line or parsed integers, so the
//     hot path can handle millions of events a second.
//
// Privacy note: events name relays, clients and destinations. This package
// only parses them; it keeps nothing, logs nothing and never copies an event
// unless the caller asks it to (see [Event.Clone]).
package torctl
