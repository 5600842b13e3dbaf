package statesync

import (
	"fmt"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// MarshalRequest is the body of a snapshot request: u8 version ‖ device
// id[16] of the device asked to answer (all zero: every device answers).
func MarshalRequest(from identity.DeviceID) []byte {
	w := wire.NewWriter(1 + identity.DeviceIDSize)
	w.U8(Version)
	w.Fixed(from[:])
	return w.Bytes()
}

// ParseRequest decodes a snapshot request.
func ParseRequest(b []byte) (identity.DeviceID, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	var id identity.DeviceID
	r.FixedInto(id[:])
	if err := r.Finish(); err != nil {
		return id, fmt.Errorf("sync request: %w", err)
	}
	return id, nil
}
