// Boot: create window.parley with its ready promise, then load the Go
// client (wasm) with instantiateStreaming. The Go side fills in the API on
// the same object and settles `ready` once its sealed storage is loaded.
'use strict';
(function () {
  let settle;
  const ready = new Promise((resolve, reject) => { settle = { resolve, reject }; });
  // A rejected ready promise must not become an unhandled rejection when
  // nobody awaits it yet; callers still see the rejection.
  ready.catch(() => {});
  const parley = { ready, timing: {} };
  // Milliseconds from navigation start to ready, for the boot benchmark.
  ready.then(() => { parley.timing.ready = performance.now(); }, () => {});
  Object.defineProperty(globalThis, 'parley', { value: parley, enumerable: true });
  // Private hand-off to the Go side; deleted once Go has taken it.
  globalThis.__parleyBoot = settle;

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
