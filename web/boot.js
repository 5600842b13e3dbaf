// Boot: create window.parley with its ready promise, then load the Go
// client (wasm) with instantiateStreaming. The Go side fills in the API on
// the same object and settles `ready` once its sealed storage is loaded.
'use strict';
(function () {
  // Sealed commits for the Go client's storage (wasm/idbstore.go,
  // PROTOCOL.md 13.1): every value sealed with AES-GCM under the data key
  // (record = 0x01 || iv || ciphertext+tag), then all written in one
  // read-write transaction of the `records` store, in one call from Go.
  // Done step by step from Go, each step costs an await (a trip through
  // the event loop and back into Go, with listeners and goroutines made
  // for it), which was most of the time a received message took. Go
  // supplies the IVs (crypto/rand), the associated data and the record
  // keys; this only runs WebCrypto and IndexedDB. Resolves to null, or
  // 'exists' when an insert-if-absent (add) found its key (nothing is
  // written then); rejects otherwise.
  const conns = new Map();
  function connect(name) {
    let c = conns.get(name);
    if (!c) {
      c = new Promise((resolve, reject) => {
        const r = indexedDB.open(name);
        r.onsuccess = () => {
          const db = r.result;
          // Let an upgrade (or a deletion) by another tab proceed; the
          // next commit opens a new connection.
          db.onversionchange = () => { db.close(); conns.delete(name); };
          db.onclose = () => conns.delete(name);
          resolve(db);
        };
        r.onerror = () => { conns.delete(name); reject(r.error); };
        r.onblocked = () => { conns.delete(name); reject(new DOMException('database blocked', 'AbortError')); };
      });
      conns.set(name, c);
    }
    return c;
  }
  // Go's batch arrives packed in one buffer (wasm/idbstore.go,
  // packCommit), as {bucket, key, iv, ad, value, ifAbsent} per operation.
  const buckets = new TextDecoder('utf-8', { fatal: true });
  function unpack(buf) {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    const skip = (n) => {
      if (n > buf.length - at) throw new RangeError('packed commit is truncated');
      at += n;
      return at - n;
    };
    const take = (n) => buf.subarray(skip(n), at);
    const u16 = () => dv.getUint16(skip(2), true);
    const u32 = () => dv.getUint32(skip(4), true);
    const n = u32();
    const ops = [];
    for (let i = 0; i < n; i++) {
      const flags = buf[skip(1)];
      const op = { bucket: buckets.decode(take(u16())), key: take(u32()), ifAbsent: (flags & 2) !== 0, value: null };
      if ((flags & 1) === 0) {
        op.iv = take(12);
        op.ad = take(u32());
        op.value = take(u32());
      }
      ops.push(op);
    }
    if (at !== buf.length) throw new RangeError('packed commit has trailing bytes');
    return ops;
  }
  async function commit(name, key, durability, packed) {
    const ops = unpack(packed);
    const db = await connect(name);
    const sealed = await Promise.all(ops.map((op) => (op.value === null ? null :
      crypto.subtle.encrypt({ name: 'AES-GCM', iv: op.iv, additionalData: op.ad }, key, op.value))));
    return new Promise((resolve, reject) => {
      const tx = db.transaction('records', 'readwrite', { durability });
      const st = tx.objectStore('records');
      tx.oncomplete = () => resolve(null);
      tx.onabort = () => {
        const err = tx.error || new DOMException('transaction aborted', 'AbortError');
        if (err.name === 'ConstraintError') resolve('exists');
        else reject(err);
      };
      ops.forEach((op, i) => {
        const k = [op.bucket, op.key];
        if (sealed[i] === null) {
          st.delete(k);
          return;
        }
        const ct = new Uint8Array(sealed[i]);
        const rec = new Uint8Array(1 + op.iv.length + ct.length);
        rec[0] = 1;
        rec.set(op.iv, 1);
        rec.set(ct, 1 + op.iv.length);
        if (op.ifAbsent) st.add(rec, k);
        else st.put(rec, k);
      });
    });
  }

  // Reads for Go's Scan (wasm/idbstore.go, readPage): up to `limit`
  // records of one bucket in a key range, in one read-only transaction
  // (one getAllRecords request where the browser has it, a cursor
  // otherwise), unsealed here and returned in one buffer, little-endian:
  // u32 count, then per record u32 len + key, u8 state (0 opened, 1 not
  // in the sealed format, 2 failed its integrity check), u32 len +
  // plaintext. `ad` is the associated data without the key; `upper` null
  // means the end of the bucket (an array sorts after every binary key).
  async function read(name, key, bucket, ad, lower, lowerOpen, upper, reverse, limit) {
    const db = await connect(name);
    const range = IDBKeyRange.bound([bucket, lower], [bucket, upper === null ? [] : upper], lowerOpen, true);
    const direction = reverse ? 'prev' : 'next';
    const recs = await new Promise((resolve, reject) => {
      const tx = db.transaction('records', 'readonly');
      const st = tx.objectStore('records');
      tx.onabort = () => reject(tx.error || new DOMException('transaction aborted', 'AbortError'));
      if (st.getAllRecords) {
        const r = st.getAllRecords({ query: range, count: limit, direction });
        r.onsuccess = () => resolve(r.result.map((x) => [x.primaryKey[1], x.value]));
        return;
      }
      const out = [];
      const r = st.openCursor(range, direction);
      r.onsuccess = () => {
        const c = r.result;
        if (c) out.push([c.primaryKey[1], c.value]);
        if (!c || out.length >= limit) resolve(out);
        else c.continue();
      };
    });
    const opened = await Promise.all(recs.map(([k, v]) => {
      if (v instanceof ArrayBuffer) v = new Uint8Array(v);
      if (!(v instanceof Uint8Array)) return 1;
      if (v.length < 1 + 12 + 16 || v[0] !== 1) return 2;
      const kb = new Uint8Array(k);
      const data = new Uint8Array(ad.length + kb.length);
      data.set(ad);
      data.set(kb, ad.length);
      return crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.subarray(1, 13), additionalData: data }, key, v.subarray(13))
        .then((p) => new Uint8Array(p), () => 2);
    }));
    let size = 4;
    recs.forEach(([k], i) => { size += 4 + k.byteLength + 1 + 4 + (typeof opened[i] === 'number' ? 0 : opened[i].length); });
    const buf = new Uint8Array(size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, recs.length, true);
    let at = 4;
    recs.forEach(([k], i) => {
      const o = opened[i];
      dv.setUint32(at, k.byteLength, true);
      buf.set(new Uint8Array(k), at + 4);
      at += 4 + k.byteLength;
      buf[at] = typeof o === 'number' ? o : 0;
      const plain = typeof o === 'number' ? null : o;
      dv.setUint32(at + 1, plain ? plain.length : 0, true);
      if (plain) buf.set(plain, at + 5);
      at += 5 + (plain ? plain.length : 0);
    });
    return buf;
  }

  // Go's Await (wasm/jsutil.go): one callback for every promise Go waits
  // for, told which one settled and how.
  function watch(p, id, settled) {
    Promise.resolve(p).then((v) => settled(id, true, v), (e) => settled(id, false, e));
  }

  let settle;
  const ready = new Promise((resolve, reject) => { settle = { resolve, reject }; });
  // A rejected ready promise must not become an unhandled rejection when
  // nobody awaits it yet; callers still see the rejection.
  ready.catch(() => {});
  const parley = { ready, timing: {} };
  // Milliseconds from navigation start to ready, for the boot benchmark.
  ready.then(() => { parley.timing.ready = performance.now(); }, () => {});
  Object.defineProperty(globalThis, 'parley', { value: parley, enumerable: true });
  // The election of the tab that runs the engine (wasm/bus.go, PROTOCOL.md
  // 13.4) starts here, while the client downloads and compiles, rather
  // than once Go runs: the Web Lock is granted, or queued behind the owner
  // tab, meanwhile. The promise resolves when this tab holds the lock,
  // which it keeps for the life of the page.
  const owner = navigator.locks ? new Promise((resolve) => {
    navigator.locks.request('parley-owner', () => {
      resolve();
      return new Promise(() => {});
    });
  }) : null;

  // Ask the browser not to evict Parley's storage (evicted keys would mean
  // a re-link) now rather than once Go runs: the answer takes a trip to
  // the browser process that used to sit on the path to ready. Go reads it
  // for state().persistent.
  const persist = navigator.storage && navigator.storage.persist ?
    navigator.storage.persist().catch(() => false) : Promise.resolve(false);

  // Private hand-offs to the Go side; deleted once Go has taken them.
  globalThis.__parleyBoot = settle;
  globalThis.__parleyStore = { commit, read, watch };
  globalThis.__parleyOwner = owner;
  globalThis.__parleyPersist = persist;

  const meta = document.querySelector('meta[name="parley-wasm"]');
  const url = meta ? meta.content : '/web/dist/parley.wasm';
  const fail = (err) => {
    settle.reject({ code: 'boot_failed', message: 'The Parley client could not start: ' + (err && err.message || err) });
  };
  if (typeof Go === 'undefined') {
    fail(new Error('wasm_exec.js did not load'));
    return;
  }
  // The client's hash (state().clientHash, shown in Settings): the
  // SHA-256 of the exact wasm bytes this page instantiates, computed here
  // over a copy of the same response body (after any Content-Encoding is
  // undone), not a value the server states. A user compares it with the
  // hash `make wasm` prints for a published release (README, "Checking the
  // client"; docs/THREAT_MODEL.md says what it does and does not prove).
  // Null when WebCrypto is missing (an insecure context) or the fetch
  // failed.
  let hashed;
  globalThis.__parleyClientHash = new Promise((resolve) => { hashed = resolve; });
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  const go = new Go();
  fetch(url)
    .then((res) => {
      res.clone().arrayBuffer()
        .then((bytes) => crypto.subtle.digest('SHA-256', bytes))
        .then((sum) => hashed(hex(sum)), () => hashed(null));
      return WebAssembly.instantiateStreaming(res, go.importObject);
    })
    .catch((err) => { hashed(null); throw err; })
    .then((result) => go.run(result.instance))
    .then(() => fail(new Error('the client exited')), fail);
})();
