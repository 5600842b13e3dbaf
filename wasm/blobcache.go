//go:build js && wasm

package main

import (
	"syscall/js"

	"github.com/hack-pad/safejs"
)

// The browser keeps the ciphertext of the attachment blobs it fetched or
// sent in its Cache Storage, so a file already shown is shown again while
// the relay is unreachable, for instance when the page is opened offline
// from the service worker (issue 15 item 5). The relay is asked first (a
// blob it no longer has is gone for this browser too only once the cache
// is cleared); the cache answers only when the relay cannot be reached.
//
// Only ciphertext is kept, exactly as the relay holds it: each blob's key
// is in its message's attachment record, sealed in IndexedDB, and the
// engine checks cached bytes against the digest signed into the message
// just as it checks downloaded ones (THREAT_MODEL.md, "Browser storage").

const (
	// blobCacheName is the Cache Storage cache of blob ciphertext; the
	// service worker's shell cache (web/sw.js) has another name and never
	// deletes this one.
	blobCacheName = "parley-blobs-v1"
	// maxCachedBlob is the largest blob kept: the bulk layer's blobs are
	// smaller, so this only stops a relay's oversized answer from
	// filling the browser's quota.
	maxCachedBlob = 8 << 20
)

// blobCache opens the cache, or reports that this browser has none (an
// insecure origin, or Cache Storage disabled).
func blobCache() (js.Value, bool) {
	caches := js.Global().Get("caches")
	if caches.IsUndefined() || caches.IsNull() {
		return js.Value{}, false
	}
	c, err := Await(safeValue(caches.Call("open", blobCacheName)))
	if err != nil {
		return js.Value{}, false
	}
	return safejs.Unsafe(c), true
}

// keepBlob stores a blob's ciphertext under its relay URL. A failure
// (quota) only costs the offline copy.
func keepBlob(url string, data []byte) {
	if len(data) > maxCachedBlob {
		return
	}
	c, ok := blobCache()
	if !ok {
		return
	}
	resp := js.Global().Get("Response").New(safejs.Unsafe(bytesToJS(data)))
	_, _ = Await(safeValue(c.Call("put", url, resp)))
}

// cachedBlob returns the kept ciphertext of the blob at url, if any.
func cachedBlob(url string) ([]byte, bool) {
	c, ok := blobCache()
	if !ok {
		return nil, false
	}
	resp, err := Await(safeValue(c.Call("match", url)))
	if err != nil {
		return nil, false
	}
	r := safejs.Unsafe(resp)
	if r.IsUndefined() || r.IsNull() {
		return nil, false
	}
	buf, err := Await(safeValue(r.Call("arrayBuffer")))
	if err != nil {
		return nil, false
	}
	b, err := bytesFromJS(buf)
	if err != nil || len(b) > maxCachedBlob {
		return nil, false
	}
	return b, true
}
