package client

import "github.com/parley-im/parley/client/storage/sealroot"

// SecurityRecords are the engine's records whose rollback to an older copy,
// or deletion, would weaken a security property: the device and account
// (revoked flag), private prekeys (a used one-time prekey brought back),
// pinned keys and lists (a deleted pin trusts a changed key afresh),
// ratchet states (a restored one reuses message keys), group states and
// sender chains, and the sync keys. A store that keeps a sealed root
// (client/storage/sealroot, PROTOCOL.md 13.7) covers them.
func SecurityRecords() []sealroot.Range {
	return []sealroot.Range{
		{Bucket: bSelf}, {Bucket: bPrekeys}, {Bucket: bLists}, {Bucket: bSessions},
		{Bucket: bGroups}, {Bucket: bGroupSender}, {Bucket: bGroupRecv},
		{Bucket: bGroupLeft}, {Bucket: bGroupJoined}, {Bucket: bSync, Prefix: keySyncKeys},
	}
}
