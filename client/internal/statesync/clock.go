package statesync

import (
	"bytes"
	"fmt"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// Clock is a hybrid logical clock timestamp (PROTOCOL.md §14.5):
// wall-clock milliseconds, a counter that orders events within one
// millisecond (or while a device's clock is behind one it has heard from),
// and the device id as the final tiebreak. Two timestamps made by
// different devices are never equal, so last-writer-wins picks the same
// winner everywhere.
type Clock struct {
	Wall    uint64 // unix milliseconds
	Counter uint32
	Device  identity.DeviceID
}

// MaxClockSkew bounds how far ahead of our wall clock a remote timestamp
// may pull our clock: a device with a clock set years ahead must not make
// every later local change lose, forever, to its writes.
const MaxClockSkew = 24 * 60 * 60 * 1000 // one day, in ms

// ClockSize is a clock's encoded size.
const ClockSize = 8 + 4 + identity.DeviceIDSize

// Compare orders timestamps: wall, then counter, then device id.
func (a Clock) Compare(b Clock) int {
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

func (a Clock) String() string {
	return fmt.Sprintf("%d.%d@%s", a.Wall, a.Counter, a.Device)
}

// Tick returns the timestamp of a local event after last, at wall time now.
func (last Clock) Tick(now uint64, dev identity.DeviceID) Clock {
	if now > last.Wall {
		return Clock{Wall: now, Device: dev}
	}
	return Clock{Wall: last.Wall, Counter: last.Counter + 1, Device: dev}
}

// Observe merges a remote timestamp into the local clock last, so every
// later local event orders after what this device has seen. A remote
// wall time more than MaxClockSkew ahead of now is not followed (the
// entry still applies by LWW; only our clock refuses to jump).
func (last Clock) Observe(remote Clock, now uint64) Clock {
	if remote.Wall > now+MaxClockSkew {
		return last
	}
	if remote.Wall > last.Wall || (remote.Wall == last.Wall && remote.Counter > last.Counter) {
		last.Wall, last.Counter = remote.Wall, remote.Counter
	}
	return last
}

func (a Clock) encode(w *wire.Writer) {
	w.U64(a.Wall)
	w.U32(a.Counter)
	w.Fixed(a.Device[:])
}

func decodeClock(r *wire.Reader) Clock {
	var a Clock
	a.Wall = r.U64()
	a.Counter = r.U32()
	r.FixedInto(a.Device[:])
	return a
}

// MarshalClockRecord is how a device stores its clock (the last timestamp
// it issued or saw): u8 version ‖ clock.
func MarshalClockRecord(c Clock) []byte {
	w := wire.NewWriter(1 + ClockSize)
	w.U8(Version)
	c.encode(w)
	return w.Bytes()
}

// ParseClockRecord decodes a stored clock.
func ParseClockRecord(b []byte) (Clock, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	c := decodeClock(r)
	if err := r.Finish(); err != nil {
		return Clock{}, fmt.Errorf("sync clock record: %w", err)
	}
	return c, nil
}
