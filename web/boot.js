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
  async function commit(name, key, durability, keys, values, ivs, ads, ifAbsent) {
    const db = await connect(name);
    const sealed = await Promise.all(values.map((v, i) => (v === null ? null :
      crypto.subtle.encrypt({ name: 'AES-GCM', iv: ivs[i], additionalData: ads[i] }, key, v))));
    return new Promise((resolve, reject) => {
      const tx = db.transaction('records', 'readwrite', { durability });
      const st = tx.objectStore('records');
      tx.oncomplete = () => resolve(null);
      tx.onabort = () => {
        const err = tx.error || new DOMException('transaction aborted', 'AbortError');
        if (err.name === 'ConstraintError') resolve('exists');
        else reject(err);
      };
      for (let i = 0; i < keys.length; i++) {
        if (sealed[i] === null) {
          st.delete(keys[i]);
          continue;
        }
        const ct = new Uint8Array(sealed[i]);
        const rec = new Uint8Array(1 + ivs[i].length + ct.length);
        rec[0] = 1;
        rec.set(ivs[i], 1);
        rec.set(ct, 1 + ivs[i].length);
        if (ifAbsent[i]) st.add(rec, keys[i]);
        else st.put(rec, keys[i]);
      }
    });
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

  // Private hand-offs to the Go side; deleted once Go has taken them.
  globalThis.__parleyBoot = settle;
  globalThis.__parleyStore = { commit };
  globalThis.__parleyOwner = owner;

  const meta = document.querySelector('meta[name="parley-wasm"]');
  const url = meta ? meta.content : '/web/dist/parley.wasm';
  const fail = (err) => {
    settle.reject({ code: 'boot_failed', message: 'The Parley client could not start: ' + (err && err.message || err) });
  };
  if (typeof Go === 'undefined') {
    fail(new Error('wasm_exec.js did not load'));
    return;
  }
  const go = new Go();
  WebAssembly.instantiateStreaming(fetch(url), go.importObject)
    .then((result) => go.run(result.instance))
    .then(() => fail(new Error('the client exited')), fail);
})();
