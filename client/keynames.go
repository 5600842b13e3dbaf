package client

import "github.com/parley-im/parley/client/storage/keyname"

// KeyNameRules are the layouts of the engine's keys that name someone: a
// contact's handle, a device, a group or a sender chain (all of which the
// relay can tie to an account). A store behind client/storage/keyname
// (PROTOCOL.md 13.9) stores those parts as a keyed PRF, so a copy of a
// locked profile does not list who its owner talks to. Each rule keeps in
// Clear the parts after the names that a hot Scan orders by (a chat's
// sort key, a chain's iteration), so those Scans stream in order.
//
// Buckets left out hold only this device's own records, random message
// ids or counters (self, msgidx, outbox, goutbox, attach, uploads,
// upchunk, link), or time (sentto: see clearBuckets in the test).
func KeyNameRules() map[string]keyname.Rule {
	n, c := keyname.Name, keyname.Clear
	whole := keyname.Rule{Sep: '/', Parts: []keyname.Part{n}}
	return map[string]keyname.Rule{
		bLists:       whole,
		bChats:       whole,
		bGroups:      whole,
		bGroupSender: whole,
		bGroupLeft:   whole,
		bSessions:    {Sep: '/', Parts: []keyname.Part{n, n}},
		bGroupJoined: {Sep: '/', Parts: []keyname.Part{n, n}},
		bGroupChains: {Sep: '/', Parts: []keyname.Part{n, n, n}},
		bGroupRecv:   {Sep: '/', Parts: []keyname.Part{n, n, n, n}},
		// <handle>/<device>/<chain>/<iteration><message id>: pending
		// messages are read in iteration order.
		bGroupPend: {Sep: '/', Parts: []keyname.Part{n, n, n, c}},
		// <chat>␟<sort key>: history pages stream in sort-key order.
		bMessages: {Sep: sep[0], Parts: []keyname.Part{n, c}},
		// spk/<id>, otk/<id>, kem/<id>, prekey-state are this device's;
		// seen/<spk id>/<initiator device>/<ephemeral> names who started
		// a session (the relay saw both in the initial message).
		bPrekeys: {Sep: '/', Parts: []keyname.Part{c, c, n, n}},
		// e/<state key> (contact/<handle>, muted/<handle>, …) and
		// p/<key id>/<message id>; hlc and keys are fixed names.
		bSync: {Sep: '/', Parts: []keyname.Part{c, n}},
	}
}
