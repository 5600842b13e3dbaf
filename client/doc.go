// Package client is Parley's messenger engine, in pure Go so the same code
// runs in the browser tab (wasm/ binds it to IndexedDB and the browser's
// WebSocket) and natively (tests, the CLI, load tools).
//
// The engine owns one device of one account. It keeps every secret in a
// storage.Store and changes state only through atomic batches: a decrypted
// message and the ratchet state that produced it are committed together,
// and an outgoing message is committed with its ciphertexts (and the
// advanced ratchets) before it is sent, so a crash never loses a message,
// never shows one twice, and never reuses a message key.
//
// Most callers want:
//
//   - Open, with a Config naming the store and the relay;
//   - CreateAccount on a primary, or StartLink on a new companion and
//     ApproveLink/ConfirmLink on the primary;
//   - Run, which keeps the device connected, receives and flushes the outbox;
//   - SendText, Chats, Messages and the event callback for the UI;
//   - SendAttachment and FetchAttachment for files (Config.BulkCipher lets
//     the browser encrypt them with WebCrypto).
//
// docs/PROTOCOL.md section 14 specifies the application messages, and
// section 15 the engine's stored records.
package client
