package e2e

// JS snippets the tests evaluate in the page. They read IndexedDB directly,
// the way an attacker with a copy of the profile would, not through the
// client's API.

// JSOpenDB opens Parley's database without a version (no upgrade).
const JSOpenDB = `new Promise((res, rej) => {
  const r = indexedDB.open('parley');
  r.onsuccess = () => res(r.result);
  r.onerror = () => rej(r.error);
})`

// JSDumpRecords evaluates to every record of every object store as
// {store, key, type, bytes: [..]} (bytes only for binary values).
const JSDumpRecords = `(async () => {
  const db = await ` + JSOpenDB + `;
  const out = [];
  for (const name of db.objectStoreNames) {
    const tx = db.transaction(name, 'readonly');
    const st = tx.objectStore(name);
    const [keys, vals] = await Promise.all([
      new Promise((res, rej) => { const r = st.getAllKeys(); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }),
      new Promise((res, rej) => { const r = st.getAll(); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }),
    ]);
    keys.forEach((k, i) => {
      const v = vals[i];
      let type = Object.prototype.toString.call(v);
      let bytes = null;
      if (v instanceof Uint8Array) bytes = Array.from(v);
      else if (v instanceof ArrayBuffer) bytes = Array.from(new Uint8Array(v));
      else if (typeof v === 'string') bytes = Array.from(new TextEncoder().encode(v));
      out.push({store: name, key: String(k), type, bytes});
    });
  }
  db.close();
  return out;
})()`
