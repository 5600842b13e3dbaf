-- The relay's D1 database: accounts, device lists, prekeys, the link
-- channel and blob reservations. Mailboxes live in one Durable Object per
-- device (src/index.mjs), blob contents in R2. D1 has no transactions, so
-- every operation that must be atomic is one statement (see store.go).

-- One row per registered account; device_list is the signed list exactly
-- as published, version its version (compare-and-swap on replace).
CREATE TABLE accounts (
  handle      TEXT PRIMARY KEY,
  account_key BLOB NOT NULL,
  version     INTEGER NOT NULL,
  device_list BLOB NOT NULL
);

-- addr is "<handle>/<device id hex>".
CREATE TABLE signed_prekeys (
  addr TEXT PRIMARY KEY,
  spk  BLOB,
  lrk  BLOB
);

-- kind 0: one-time X25519 prekeys, kind 1: one-time KEM prekeys. A fetch
-- takes the lowest id of each kind with DELETE ... RETURNING.
CREATE TABLE one_time_prekeys (
  id   INTEGER PRIMARY KEY AUTOINCREMENT,
  addr TEXT NOT NULL,
  kind INTEGER NOT NULL,
  key  BLOB NOT NULL
);
CREATE INDEX one_time_prekeys_by_addr ON one_time_prekeys (addr, kind, id);

-- Link channel slots: written once, taken once (filled 1 -> 0), kept as a
-- tombstone until they expire (unix ms).
CREATE TABLE links (
  key     BLOB PRIMARY KEY,
  data    BLOB,
  expires INTEGER NOT NULL,
  filled  INTEGER NOT NULL
);

-- Blob reservations, charged to the reserving account (owner); object is
-- the R2 key and size its length once the upload is complete. An owner's
-- usage is the sum of its unexpired uploaded sizes.
CREATE TABLE blobs (
  id      BLOB PRIMARY KEY,
  owner   TEXT NOT NULL,
  expires INTEGER NOT NULL,
  object  TEXT,
  size    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blobs_by_expiry ON blobs (expires);
CREATE INDEX blobs_by_owner ON blobs (owner, expires);
CREATE INDEX links_by_expiry ON links (expires);
