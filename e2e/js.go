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
// {store, key, type, bytes: [..]} (bytes only for binary values). Engine
// records have array keys [bucket, bytes], shown as "bucket/key".
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
      const key = Array.isArray(k) ? k[0] + '/' + new TextDecoder().decode(k[1]) : String(k);
      const fields = (v && typeof v === 'object' && !(v instanceof CryptoKey) && !ArrayBuffer.isView(v))
        ? Object.keys(v) : null;
      out.push({store: name, key, type, bytes, fields});
    });
  }
  db.close();
  return out;
})()`

// JSOpenRecord(bucket, key) evaluates to the plaintext bytes of one engine
// record, recovered the only way script can while no lock is set: unwrap
// the data key with the (usable, unexportable) device key, then decrypt
// with the record's associated data. It is how an attacker with the
// unlocked profile would read it; a locked profile has no device key.
// The AD's separators are \x00, not \0: a key beginning with a digit (a
// stored name, PROTOCOL.md 13.9) would make \0 an octal escape.
func JSOpenRecord(bucket, key string) string {
	return `(async () => {
  const db = await ` + JSOpenDB + `;
  const get = (store, k) => new Promise((res, rej) => {
    const r = db.transaction(store).objectStore(store).get(k);
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error);
  });
  const enc = (s) => new TextEncoder().encode(s);
  const device = await get('keys', 'device');
  const dk = await get('keys', 'datakey');
  const rec = await get('records', ['` + bucket + `', enc('` + key + `')]);
  db.close();
  const dataKey = await crypto.subtle.unwrapKey('raw', dk.wrapped, device,
    {name: 'AES-GCM', iv: dk.iv, additionalData: enc('parley/datakey/v1\0device')},
    {name: 'AES-GCM'}, false, ['decrypt']);
  const plain = await crypto.subtle.decrypt({name: 'AES-GCM', iv: rec.slice(1, 13),
    additionalData: enc('parley/record/v1\x00` + bucket + `\x00` + key + `')}, dataKey, rec.slice(13));
  return Array.from(new Uint8Array(plain));
})()`
}
