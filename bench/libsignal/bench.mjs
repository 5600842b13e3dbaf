// Runs Parley's crypto benchmark workloads on @signalapp/libsignal-client
// (Rust, native addon) so that bench/crypto.sh can set Parley's Go numbers
// side by side with libsignal's, measured in the same invocation on the same
// (shared, noisy) machine. See ../README.md for what each workload is.
//
// Output: one JSON object on one line of stdout, µs/op medians over several
// runs (several invocations append cleanly as JSON lines):
//   {"tool":"libsignal","version":"0.103.0","node":"v20…","runs":5,
//    "workloads":{"Stream1KiB":{"us_per_op":…,"runs_us":[…],"ops":…},…}}
// A workload that has no libsignal equivalent is reported with "na" and a
// reason instead of a number.
//
// Usage: node bench.mjs [-runs N] [-time SECONDS] [-only NAME]

import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import * as SignalClient from '@signalapp/libsignal-client';

const require = createRequire(import.meta.url);
const LIBSIGNAL_VERSION = require('@signalapp/libsignal-client/package.json').version;

const {
  PrivateKey, IdentityKeyPair, KEMKeyPair, ProtocolAddress, PreKeyBundle,
  PreKeyRecord, SignedPreKeyRecord, KyberPreKeyRecord, SessionRecord,
  SignalMessage, PreKeySignalMessage, CiphertextMessageType,
  SenderKeyDistributionMessage, IdentityChange,
} = SignalClient;

const MSG_SIZE = 1024; // every workload moves 1 KiB plaintexts

// ---------------------------------------------------------------------------
// In-memory stores: the libsignal side of "the core with in-memory state".
// They keep the native record objects, so no serialization is timed except
// where the workload is serialization itself.

class MemSessionStore extends SignalClient.SessionStore {
  constructor() { super(); this.m = new Map(); }
  async saveSession(addr, rec) { this.m.set(addr.toString(), rec); }
  async getSession(addr) { return this.m.get(addr.toString()) ?? null; }
  async getExistingSessions(addrs) {
    return addrs.map((a) => {
      const r = this.m.get(a.toString());
      if (!r) throw new Error(`no session for ${a.toString()}`);
      return r;
    });
  }
}

class MemIdentityStore extends SignalClient.IdentityKeyStore {
  constructor(pair, regId) { super(); this.pair = pair; this.regId = regId; this.m = new Map(); }
  async getIdentityKey() { return this.pair.privateKey; }
  async getLocalRegistrationId() { return this.regId; }
  async saveIdentity(addr, key) {
    const k = addr.toString();
    const old = this.m.get(k);
    this.m.set(k, key);
    return old && !old.equals(key) ? IdentityChange.ReplacedExisting : IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(addr, key) {
    const old = this.m.get(addr.toString());
    return !old || old.equals(key);
  }
  async getIdentity(addr) { return this.m.get(addr.toString()) ?? null; }
}

class MemPreKeyStore extends SignalClient.PreKeyStore {
  constructor() { super(); this.m = new Map(); }
  async savePreKey(id, rec) { this.m.set(id, rec); }
  async getPreKey(id) {
    const r = this.m.get(id);
    if (!r) throw new Error(`no prekey ${id}`);
    return r;
  }
  async removePreKey(id) { this.m.delete(id); }
}

class MemSignedPreKeyStore extends SignalClient.SignedPreKeyStore {
  constructor() { super(); this.m = new Map(); }
  async saveSignedPreKey(id, rec) { this.m.set(id, rec); }
  async getSignedPreKey(id) { return this.m.get(id); }
}

class MemKyberPreKeyStore extends SignalClient.KyberPreKeyStore {
  constructor() { super(); this.m = new Map(); }
  async saveKyberPreKey(id, rec) { this.m.set(id, rec); }
  async getKyberPreKey(id) { return this.m.get(id); }
  async markKyberPreKeyUsed() {}
}

class MemSenderKeyStore extends SignalClient.SenderKeyStore {
  constructor() { super(); this.m = new Map(); }
  async saveSenderKey(sender, dist, rec) { this.m.set(`${sender.toString()}|${dist}`, rec); }
  async getSenderKey(sender, dist) { return this.m.get(`${sender.toString()}|${dist}`) ?? null; }
}

// A device: identity keys plus the stores libsignal needs.
function newDevice(name, deviceId) {
  const pair = IdentityKeyPair.generate();
  return {
    addr: ProtocolAddress.new(name, deviceId),
    pair,
    identity: new MemIdentityStore(pair, 1 + (deviceId & 0x3fff)),
    sessions: new MemSessionStore(),
    prekeys: new MemPreKeyStore(),
    signed: new MemSignedPreKeyStore(),
    kyber: new MemKyberPreKeyStore(),
    senderKeys: new MemSenderKeyStore(),
  };
}

// Publishes a fresh prekey bundle for dev: signed prekey, one-time prekey and
// a signed ML-KEM-768 ("Kyber") prekey, as a Signal device uploads them.
let nextPreKeyId = 1;
function publishBundle(dev) {
  const id = nextPreKeyId++;
  const spk = PrivateKey.generate();
  const spkSig = dev.pair.privateKey.sign(spk.getPublicKey().serialize());
  dev.signed.m.set(id, SignedPreKeyRecord.new(id, Date.now(), spk.getPublicKey(), spk, spkSig));
  const opk = PrivateKey.generate();
  dev.prekeys.m.set(id, PreKeyRecord.new(id, opk.getPublicKey(), opk));
  const kem = KEMKeyPair.generate();
  const kemSig = dev.pair.privateKey.sign(kem.getPublicKey().serialize());
  dev.kyber.m.set(id, KyberPreKeyRecord.new(id, Date.now(), kem, kemSig));
  return PreKeyBundle.new(
    dev.identity.regId, dev.addr.deviceId(),
    id, opk.getPublicKey(),
    id, spk.getPublicKey(), spkSig,
    dev.pair.publicKey,
    id, kem.getPublicKey(), kemSig);
}

async function encrypt(from, to, pt) {
  return SignalClient.signalEncrypt(pt, to.addr, from.addr, from.sessions, from.identity);
}

async function decrypt(to, from, ct) {
  const bytes = ct.serialize();
  if (ct.type() === CiphertextMessageType.PreKey) {
    return SignalClient.signalDecryptPreKey(
      PreKeySignalMessage.deserialize(bytes), from.addr, to.addr,
      to.sessions, to.identity, to.prekeys, to.signed, to.kyber);
  }
  return SignalClient.signalDecrypt(
    SignalMessage.deserialize(bytes), from.addr, to.addr, to.sessions, to.identity);
}

function check(pt, got) {
  if (got.length !== pt.length || !Buffer.from(got).equals(Buffer.from(pt))) {
    throw new Error('round trip mismatch');
  }
}

// An established session: Alice set it up from Bob's bundle and both sides
// have sent one message, so neither side is still on a PreKey message.
async function establishedPair() {
  const alice = newDevice('alice', 1);
  const bob = newDevice('bob', 1);
  await SignalClient.processPreKeyBundle(publishBundle(bob), bob.addr, alice.addr, alice.sessions, alice.identity);
  const pt = new Uint8Array(randomBytes(MSG_SIZE));
  check(pt, await decrypt(bob, alice, await encrypt(alice, bob, pt)));
  check(pt, await decrypt(alice, bob, await encrypt(bob, alice, pt)));
  return { alice, bob, pt };
}

// ---------------------------------------------------------------------------
// Workloads. Each returns an async op() doing exactly one unit of work; the
// runner times batches of calls. The units match bench/cryptobench.

const workloads = {
  // Bundle → first message → responder decrypt: Alice verifies Bob's bundle
  // (two signatures), runs X25519 DHs and the ML-KEM-768 encapsulation,
  // encrypts a 1 KiB first message; Bob decapsulates, derives the same
  // session and decrypts. Bob's prekeys are generated outside the timed op
  // (a device uploads them ahead of time); each op uses a fresh bundle
  // because the one-time prekey is consumed.
  async Setup() {
    const bob = newDevice('bob', 1);
    const pt = new Uint8Array(randomBytes(MSG_SIZE));
    let pool = [];
    return {
      // Key generation is off the clock: the runner calls prepare() outside
      // the timed batch. Alice's identity is long-lived, Bob's prekeys were
      // uploaded ahead of time.
      prepare(count) {
        bob.prekeys.m.clear(); bob.signed.m.clear(); bob.kyber.m.clear();
        pool = [];
        for (let i = 0; i < count; i++) {
          pool.push({ alice: newDevice('alice', 1 + (i % 100)), bundle: publishBundle(bob) });
        }
      },
      async op() {
        const { alice, bundle } = pool.pop();
        // Bob keeps no session state between ops, only his prekeys.
        bob.sessions = new MemSessionStore();
        bob.identity.m.clear();
        await SignalClient.processPreKeyBundle(bundle, bob.addr, alice.addr, alice.sessions, alice.identity);
        const ct = await encrypt(alice, bob, pt);
        if (ct.type() !== CiphertextMessageType.PreKey) throw new Error('first message is not a PreKey message');
        check(pt, await decrypt(bob, alice, ct));
      },
    };
  },

  // One-way stream: Alice sends, Bob receives, no direction change, so no
  // DH ratchet step; one op = one 1 KiB encrypt + decrypt.
  async Stream1KiB() {
    const { alice, bob, pt } = await establishedPair();
    return {
      async op() { check(pt, await decrypt(bob, alice, await encrypt(alice, bob, pt))); },
    };
  },

  // Ping-pong: the sender alternates every message, so every message carries
  // a new ratchet key and each side does a DH ratchet step; one op = one
  // 1 KiB encrypt + decrypt (half a round trip).
  async PingPong1KiB() {
    const { alice, bob, pt } = await establishedPair();
    let turn = 0;
    return {
      async op() {
        const [from, to] = (turn++ & 1) ? [bob, alice] : [alice, bob];
        check(pt, await decrypt(to, from, await encrypt(from, to, pt)));
      },
    };
  },

  // Sender-key group message: the sender encrypts once with its sender key
  // chain and signs; one member decrypts and verifies. The distribution
  // message was processed beforehand. One op = one encrypt + one decrypt.
  async Group1KiB() {
    const alice = newDevice('alice', 1);
    const bob = newDevice('bob', 1);
    const dist = 'd1a9b5a0-5b8c-4f55-9d68-2a4f0d2f4c11';
    const skdm = await SenderKeyDistributionMessage.create(alice.addr, dist, alice.senderKeys);
    await SignalClient.processSenderKeyDistributionMessage(
      alice.addr, SenderKeyDistributionMessage.deserialize(skdm.serialize()), bob.senderKeys);
    const pt = new Uint8Array(randomBytes(MSG_SIZE));
    return {
      async op() {
        const ct = await SignalClient.groupEncrypt(alice.addr, dist, alice.senderKeys, pt);
        check(pt, await SignalClient.groupDecrypt(alice.addr, bob.senderKeys, ct.serialize()));
      },
    };
  },

  // libsignal has no signed device list: Signal's server is authoritative
  // for a user's devices, so there is nothing equivalent to time.
  DeviceListVerify5: 'na: Signal has no signed device list (the server is authoritative for devices)',

  // Session state to bytes and back, for an established session (both sides
  // have sent, as in Stream1KiB's starting point).
  async StateMarshal() {
    const { alice, bob } = await establishedPair();
    const rec = await alice.sessions.getSession(bob.addr);
    return { op() { if (rec.serialize().length === 0) throw new Error('empty'); } };
  },
  async StateUnmarshal() {
    const { alice, bob } = await establishedPair();
    const bytes = (await alice.sessions.getSession(bob.addr)).serialize();
    return { op() { SessionRecord.deserialize(bytes); } };
  },
};

// ---------------------------------------------------------------------------
// Runner: per workload, calibrate a batch size to about `time` seconds, then
// time `runs` batches and report the median µs/op.

function parseArgs(argv) {
  const a = { runs: 5, time: 0.5, only: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '-runs') { a.runs = parseInt(v, 10); i++; }
    else if (k === '-time') { a.time = parseFloat(v); i++; }
    else if (k === '-only') { a.only = new RegExp(v); i++; }
    else throw new Error(`unknown argument ${k}`);
  }
  if (!(a.runs >= 1) || !(a.time > 0)) throw new Error('bad -runs or -time');
  return a;
}

async function timeBatch(w, n) {
  if (w.prepare) w.prepare(n);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await w.op();
  return Number(process.hrtime.bigint() - t0) / 1e3; // µs
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const out = {
    tool: 'libsignal',
    version: LIBSIGNAL_VERSION,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    msg_size: MSG_SIZE,
    runs: args.runs,
    workloads: {},
  };
  for (const [name, make] of Object.entries(workloads)) {
    if (args.only && !args.only.test(name)) continue;
    if (typeof make === 'string') {
      out.workloads[name] = { na: make.replace(/^na: /, '') };
      continue;
    }
    const w = await make();
    // Warm up and calibrate: grow n until one batch takes ≥ 1/4 of the budget.
    let n = 1;
    let us = await timeBatch(w, n);
    while (us < args.time * 1e6 / 4 && n < 1e7) {
      n *= 4;
      us = await timeBatch(w, n);
    }
    n = Math.max(1, Math.round(n * (args.time * 1e6) / us));
    const runs = [];
    for (let r = 0; r < args.runs; r++) runs.push((await timeBatch(w, n)) / n);
    out.workloads[name] = {
      us_per_op: +median(runs).toFixed(2),
      runs_us: runs.map((x) => +x.toFixed(2)),
      ops: n,
      ...(w.note ? { note: w.note } : {}),
    };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
