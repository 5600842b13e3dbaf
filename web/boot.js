// Boot: create window.parley with its ready promise, then load the Go
// client (wasm) with instantiateStreaming. The Go side fills in the API on
// the same object and settles `ready` once its sealed storage is loaded.
'use strict';
(function () {
  // Sealed commits for the Go client's storage (wasm/idbstore.go,
  // PROTOCOL.md 13.1): every value sealed with AES-GCM under the current
  // data key (record = 0x01 || iv || ciphertext+tag at epoch 0, 0x02 ||
  // u32 epoch || iv || ciphertext+tag after a lock change), then all written in one
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
  // The sealed layouts (wasm/idbwire/sealed.go, ParseSealed and
  // SealedHeader): header(v) is {epoch, at} with the iv at `at`, or null.
  function header(v) {
    if (v[0] === 1) return v.length >= 1 + 12 + 16 ? { epoch: 0, at: 1 } : null;
    if (v[0] !== 2 || v.length < 5 + 12 + 16) return null;
    const epoch = new DataView(v.buffer, v.byteOffset, 5).getUint32(1, false);
    return epoch === 0 ? null : { epoch, at: 5 };
  }
  function sealed(epoch, iv, ct) {
    ct = new Uint8Array(ct);
    const at = epoch === 0 ? 1 : 5;
    const rec = new Uint8Array(at + iv.length + ct.length);
    rec[0] = epoch === 0 ? 1 : 2;
    if (epoch !== 0) new DataView(rec.buffer).setUint32(1, epoch, false);
    rec.set(iv, at);
    rec.set(ct, at + iv.length);
    return rec;
  }
  // The associated data of the record at [bucket, key bytes].
  const utf8 = new TextEncoder();
  function recordAD(k) {
    const head = utf8.encode('parley/record/v1\0' + k[0] + '\0');
    const kb = new Uint8Array(k[1]);
    const ad = new Uint8Array(head.length + kb.length);
    ad.set(head);
    ad.set(kb, head.length);
    return ad;
  }
  async function commit(name, key, epoch, durability, packed) {
    const ops = unpack(packed);
    const db = await connect(name);
    const cts = await Promise.all(ops.map((op) => (op.value === null ? null :
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
        if (cts[i] === null) {
          st.delete(k);
          return;
        }
        const rec = sealed(epoch, op.iv, cts[i]);
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
  // plaintext. `keys` maps each data key epoch the profile holds to its
  // key; `ad` is the associated data without the key; `upper` null
  // means the end of the bucket (an array sorts after every binary key).
  async function read(name, keys, bucket, ad, lower, lowerOpen, upper, reverse, limit) {
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
      const h = header(v);
      const key = h && keys.get(h.epoch);
      if (!key) return 2;
      const kb = new Uint8Array(k);
      const data = new Uint8Array(ad.length + kb.length);
      data.set(ad);
      data.set(kb, ad.length);
      return crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.subarray(h.at, h.at + 12), additionalData: data }, key, v.subarray(h.at + 12))
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

  // One step of the re-seal after a lock change (wasm/reseal.go,
  // PROTOCOL.md 13.2): the next `limit` records after `after` (null: from
  // the start) of the whole records store, in one read-only transaction;
  // those sealed under a retired key of `keys` are opened and sealed again
  // under `key` (epoch `epoch`), and written in one relaxed read-write
  // transaction, each only if it still holds the bytes read (an engine
  // write since then is newer and already under `key`). A record that
  // does not open is left as it is. Resolves to {next (the last key read,
  // or null at the end), scanned, resealed, raced, failed, total (the
  // store's record count, on the first step only)}.
  async function reseal(name, keys, epoch, key, after, limit) {
    const db = await connect(name);
    const range = after === null ? null : IDBKeyRange.lowerBound(after, true);
    const [ks, vs, total] = await new Promise((resolve, reject) => {
      const tx = db.transaction('records', 'readonly');
      const st = tx.objectStore('records');
      const rk = st.getAllKeys(range, limit);
      const rv = st.getAll(range, limit);
      const rc = after === null ? st.count() : null;
      tx.oncomplete = () => resolve([rk.result, rv.result, rc ? rc.result : -1]);
      tx.onabort = () => reject(tx.error || new DOMException('transaction aborted', 'AbortError'));
    });
    const todo = [];
    ks.forEach((k, i) => {
      let v = vs[i];
      if (v instanceof ArrayBuffer) v = new Uint8Array(v);
      if (!Array.isArray(k) || !(v instanceof Uint8Array)) return;
      const h = header(v);
      if (h && h.epoch !== epoch) todo.push({ k, v, h, old: keys.get(h.epoch) });
    });
    const moved = await Promise.all(todo.map(async ({ k, v, h, old }) => {
      if (!old) return null;
      const ad = recordAD(k);
      let plain;
      try {
        plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.subarray(h.at, h.at + 12), additionalData: ad }, old, v.subarray(h.at + 12)));
      } catch (e) {
        return null;
      }
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: ad }, key, plain);
      plain.fill(0);
      return sealed(epoch, iv, ct);
    }));
    const out = { next: ks.length < limit ? null : ks[ks.length - 1], scanned: ks.length, resealed: 0, raced: 0, failed: 0, total };
    out.failed = moved.filter((m) => m === null).length;
    if (out.failed === moved.length) return out;
    const same = (a, b) => {
      if (a instanceof ArrayBuffer) a = new Uint8Array(a);
      if (!(a instanceof Uint8Array) || a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
      return true;
    };
    await new Promise((resolve, reject) => {
      const tx = db.transaction('records', 'readwrite', { durability: 'relaxed' });
      const st = tx.objectStore('records');
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(tx.error || new DOMException('transaction aborted', 'AbortError'));
      todo.forEach(({ k, v }, i) => {
        if (moved[i] === null) return;
        const r = st.get(k);
        r.onsuccess = () => {
          if (same(r.result, v)) {
            st.put(moved[i], k);
            out.resealed++;
          } else {
            out.raced++;
          }
        };
      });
    });
    return out;
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
  globalThis.__parleyStore = { commit, read, reseal, watch };
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
