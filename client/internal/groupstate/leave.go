package groupstate

import (
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

// A member who is no admin cannot sign a state, so it leaves by asking the
// admins' devices (payload kind 26, PROTOCOL.md §14.6) with this body.

// LeaveBodySize is the size of a leave request's body: group id ‖ u64
// version.
const LeaveBodySize = IDSize + 8

// LeaveBody encodes a leave request: the group and the version of the
// state the leaving device held.
func LeaveBody(id ID, version uint64) []byte {
	w := wire.NewWriter(LeaveBodySize)
	w.Fixed(id[:])
	w.U64(version)
	return w.Bytes()
}

// ParseLeave decodes a leave request's body: exactly a group id and a
// version.
func ParseLeave(body []byte) (ID, uint64, error) {
	var id ID
	if len(body) != LeaveBodySize {
		return id, 0, detail(ErrLeaveRequestSize, "leave request: body of %d bytes, want %d (group id and version)", len(body), LeaveBodySize)
	}
	r := wire.NewReader(body)
	r.FixedInto(id[:])
	version := r.U64()
	if err := r.Finish(); err != nil {
		return id, 0, fmt.Errorf("leave request: %w", err)
	}
	return id, version, nil
}
