package client

import (
	"bytes"
	"fmt"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// hlc is a hybrid logical clock timestamp (PROTOCOL.md §14.5): wall-clock
// milliseconds, a counter that orders events within one millisecond (or
// while a device's clock is behind one it has heard from), and the device
// id as the final tiebreak. Two timestamps made by different devices are
// never equal, so last-writer-wins picks the same winner everywhere.
type hlc struct {
	Wall    uint64 // unix milliseconds
	Counter uint32
	Device  identity.DeviceID
}

// maxClockSkew bounds how far ahead of our wall clock a remote timestamp
// may pull our clock: a device with a clock set years ahead must not make
// every later local change lose, forever, to its writes.
const maxClockSkew = 24 * 60 * 60 * 1000 // one day, in ms

// compare orders timestamps: wall, then counter, then device id.
func (a hlc) compare(b hlc) int {
	switch {
	case a.Wall < b.Wall:
		return -1
	case a.Wall > b.Wall:
		return 1
	case a.Counter < b.Counter:
		return -1
	case a.Counter > b.Counter:
		return 1
	}
	return bytes.Compare(a.Device[:], b.Device[:])
}

func (a hlc) String() string {
	return fmt.Sprintf("%d.%d@%s", a.Wall, a.Counter, a.Device)
}

// tick returns the timestamp of a local event after last, at wall time now.
func (last hlc) tick(now uint64, dev identity.DeviceID) hlc {
	if now > last.Wall {
		return hlc{Wall: now, Device: dev}
	}
	return hlc{Wall: last.Wall, Counter: last.Counter + 1, Device: dev}
}

// observe merges a remote timestamp into the local clock last, so every
// later local event orders after what this device has seen. A remote
// wall time more than maxClockSkew ahead of now is not followed (the
// entry still applies by LWW; only our clock refuses to jump).
func (last hlc) observe(remote hlc, now uint64) hlc {
	if remote.Wall > now+maxClockSkew {
		return last
	}
	if remote.Wall > last.Wall || (remote.Wall == last.Wall && remote.Counter > last.Counter) {
		last.Wall, last.Counter = remote.Wall, remote.Counter
	}
	return last
}

const hlcSize = 8 + 4 + identity.DeviceIDSize

func (a hlc) encode(w *wire.Writer) {
	w.U64(a.Wall)
	w.U32(a.Counter)
	w.Fixed(a.Device[:])
}

func decodeHLC(r *wire.Reader) hlc {
	var a hlc
	a.Wall = r.U64()
	a.Counter = r.U32()
	r.FixedInto(a.Device[:])
	return a
}
