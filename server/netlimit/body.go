package netlimit

import (
	"io"
	"net/http"
)

// CloseIfBodyUnread makes a response that goes out before req's body was
// read to its end also close the connection. Go's server otherwise reads
// up to 256 KiB of an unread body, with no deadline, before it writes any
// answer (so that the connection can serve another request): a refusal
// made on the headers alone (a bad id, a spent budget, a method not
// allowed) would wait for a body its client never finishes, and hold the
// connection for ever.
func CloseIfBodyUnread(w http.ResponseWriter, req *http.Request) http.ResponseWriter {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return w
	}
	b := &watchedBody{ReadCloser: req.Body}
	req.Body = b
	return &closeIfUnread{ResponseWriter: w, body: b}
}

type watchedBody struct {
	io.ReadCloser
	done bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
	}
	return n, err
}

type closeIfUnread struct {
	http.ResponseWriter
	body        *watchedBody
	wroteHeader bool
}

func (w *closeIfUnread) WriteHeader(code int) {
	if !w.wroteHeader && !w.body.done {
		w.Header().Set("Connection", "close")
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeIfUnread) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController (read deadlines, hijacking) reach the
// underlying writer.
func (w *closeIfUnread) Unwrap() http.ResponseWriter { return w.ResponseWriter }
