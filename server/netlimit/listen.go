package netlimit

import (
	"net"
	"sync"
)

// Listener caps the connections open at once: total in all, perAddr for
// one Key. Every connection counts, from accept until it is closed: plain
// requests, long-polls and hijacked WebSockets alike, so the caps bound
// the process's descriptors and the memory each connection pins. A
// connection over a cap is closed as soon as it is accepted (the peer sees
// a reset), before a byte of it is read: refusing is what keeps the
// descriptors for everyone else, /healthz included.
type Listener struct {
	net.Listener
	total, perAddr int

	mu     sync.Mutex
	open   int
	byAddr map[string]int
}

// Listen wraps ln with the caps; a cap of zero or less means none.
func Listen(ln net.Listener, total, perAddr int) *Listener {
	return &Listener{Listener: ln, total: total, perAddr: perAddr, byAddr: make(map[string]int)}
}

// Accept returns the next connection within the caps, closing those over
// them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := Key(c.RemoteAddr().String())
		if !l.enter(key) {
			c.Close()
			continue
		}
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

func (l *Listener) enter(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.total > 0 && l.open >= l.total) || (l.perAddr > 0 && l.byAddr[key] >= l.perAddr) {
		return false
	}
	l.open++
	l.byAddr[key]++
	return true
}

func (l *Listener) leave(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// conn gives its place back when it is first closed.
type conn struct {
	net.Conn
	l    *Listener
	key  string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.leave(c.key) })
	return err
}
