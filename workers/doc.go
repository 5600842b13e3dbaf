//go:build js && wasm

// Command workers is the Parley relay on Cloudflare Workers: the same
// server/relayserver code as the self-hosted binary, compiled to wasm with
// github.com/syumai/workers, on Cloudflare's storage.
//
// What runs where:
//
//   - Static files (index.html, web/, the client wasm) are Workers Static
//     Assets, with a _headers file generated from server.New's own
//     responses (cmd/assets), so they never start a Go instance.
//   - Everything else reaches this Go program, one fresh instance per
//     request: the relay's HTTP API (accounts, device lists, link
//     channel, blobs) through relay.Handler inside server.New, and the
//     hosted-session calls (/_hosted/…) that Socket objects make.
//   - A device's WebSocket is accepted by a Socket Durable Object (a Go
//     handler cannot accept one), which keeps it with the hibernation
//     API and hands every event to Go: relay.OpenSession, SessionFrame,
//     SessionDeliver, SessionTimeout. Go checks the auth answer, the send
//     and the acks, and writes to Mailbox objects; the Socket only writes
//     the frames Go returns.
//   - Each device's mailbox is a Mailbox Durable Object (SQLite storage):
//     enqueue, read, delete, purge, and waking the device's Sockets.
//   - Accounts, device lists, prekeys, link messages and blob
//     reservations are in D1 (cfStore, migrations/); blob bytes in R2.
//
// src/index.mjs holds the two Durable Objects and the entry point; it is
// the only server JavaScript. wrangler.jsonc declares the bindings.
package main
