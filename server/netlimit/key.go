// Package netlimit holds what every per-address limit of the server shares:
// the key an address is counted under (Key), and a listener that caps the
// connections open at once, per address and in total (Listen).
package netlimit

import (
	"net"
	"net/netip"
)

// IPv6Prefix is how many leading bits of an IPv6 address name one client:
// a /64 is what one home, phone or VM is given, and every address inside
// it is the same client's for free, so keying on the exact address would
// give one client 2^64 budgets.
const IPv6Prefix = 64

// Key is the budget key of a peer address ("host:port" or a bare host):
// an IPv4 address as it is (IPv4-mapped IPv6 included), an IPv6 address by
// its IPv6Prefix network. Anything unparseable is its own key.
func Key(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(IPv6Prefix)
	return p.String()
}
