// Package tstest is the test harness every Parley suite shares (client,
// server/relayserver, cmd/parley and the workers module's wranglertest), so
// that each suite does not keep its own copy:
//
//   - clock.go: Clock, a fake clock the relay and the engines share;
//   - relay.go: StartRelay, the real relay on a loopback port over its
//     own store, shut down when the test ends;
//   - user.go: User, an account that speaks the relay protocol through
//     relayclient (Register, Dial, Recv, NoEnvelope, WaitClosed);
//   - device.go: the parts of a native test device that do not depend on
//     the suite (RunOnline, StopRun, Recorder, WaitMessage).
//
// Only tests import it. It must not import client: client's in-package
// tests use it, and a package they import cannot import client. What it
// needs of the engine it takes as an interface (Engine) or as type
// parameters. It may import server/relayserver because every test of that
// package is in package relayserver_test.
package tstest
