// The Parley relay on Cloudflare Workers: the entry point and two Durable
// Objects. This is the only server JavaScript, and it holds no rule of the
// relay: every decision (the challenge, the auth answer, send coverage,
// limits, the delivery window, error codes) is made by the Go relay
// (server/relayserver, compiled to build/app.wasm). JavaScript is here only for
// what Go on Workers cannot do: accept a WebSocket, and be a Durable Object.
//
//   fetch      WebSocket upgrades of /v1/ws go to a new Socket object;
//              everything else (the relay's HTTP API) goes to Go. Static
//              files never get here: Workers Static Assets serve them.
//   Socket     one per device socket, kept with the hibernation API. Each
//              event (open, message, mailbox wake-up, auth deadline, close)
//              is handed to Go in-process together with the session state
//              this object stores; Go answers with frames to write and
//              whether to close, and updates the state.
//   Mailbox    one per device (named "<handle>/<device hex>"): the queued
//              envelopes in its SQLite storage, and the Socket objects to
//              wake when one arrives. Go calls it; it counts, stores,
//              reads and deletes opaque bytes.

import { DurableObject } from "cloudflare:workers";
import go from "../build/worker.mjs"; // syumai/workers: a fresh Go instance per call

// Requests from the objects to Go carry this origin; the path says which
// hosted-session call it is (workers/main.go).
const HOSTED = "https://hosted.internal/_hosted/";

export default {
  async fetch(req, env, ctx) {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/_hosted/")) {
      return new Response("not found", { status: 404 }); // in-process only
    }
    if (url.pathname === "/v1/ws" && req.headers.get("Upgrade")?.toLowerCase() === "websocket") {
      return env.SOCKETS.get(env.SOCKETS.newUniqueId()).fetch(req);
    }
    return go.fetch(req, env, ctx);
  },
  scheduled: go.scheduled, // the sweep of expired link messages and blobs
};

export class Socket extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.queue = Promise.resolve();
  }

  // serial runs events one at a time in arrival order, so Go sees the
  // device's frames in order and never two versions of the session.
  serial(fn) {
    const run = this.queue.then(fn);
    this.queue = run.catch((err) => this.abort(err));
    return run;
  }

  async fetch(req) {
    const url = new URL(req.url);
    if (req.headers.get("Upgrade")?.toLowerCase() === "websocket") {
      const protocols = (req.headers.get("Sec-WebSocket-Protocol") ?? "").split(",").map((p) => p.trim());
      if (!protocols.includes(SUBPROTOCOL)) {
        // As the Go relay does: accept, then close with a policy violation.
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        server.close(1008, `subprotocol ${SUBPROTOCOL} required`);
        return new Response(null, { status: 101, webSocket: client });
      }
      const [client, server] = Object.values(new WebSocketPair());
      this.ctx.acceptWebSocket(server);
      this.serial(() => this.call("open", {}, server));
      return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": SUBPROTOCOL } });
    }
    // From this device's Mailbox. 410 tells it this socket is gone.
    if (this.ctx.getWebSockets().length === 0) return new Response(null, { status: 410 });
    if (url.pathname === "/wake") {
      this.serial(() => this.call("deliver"));
    } else if (url.pathname === "/apply") {
      const out = await req.json();
      this.serial(() => this.apply(out));
    }
    return new Response(null, { status: 204 });
  }

  webSocketMessage(ws, msg) {
    const binary = typeof msg !== "string";
    const data = binary ? new Uint8Array(msg) : new TextEncoder().encode(msg);
    return this.serial(async () => {
      // Go's read limit for this session (Session.ReadLimit: the Auth
      // frame's size until login): a longer message closes the socket as
      // the Go relay's does (1009), without a Go instance or base64 copy.
      const limit = (await this.load(ws))?.read_limit;
      if (limit && data.byteLength > limit) {
        ws.close(1009, `message over ${limit} bytes`);
        return this.call("closed", {}, ws);
      }
      return this.call("frame", { data: toBase64(data), binary }, ws);
    });
  }

  webSocketClose(ws, code, reason) {
    try {
      ws.close(code, reason); // complete the closing handshake
    } catch {
      // 1005/1006 cannot be sent back, or the socket is already closed.
    }
    return this.serial(() => this.call("closed", {}, ws));
  }

  webSocketError(ws) {
    return this.serial(() => this.call("closed", {}, ws));
  }

  // alarm is the deadline Go asked for (relay.Output's Deadline): the
  // login deadline at open, then the moment a companion's attestation
  // runs out (or now, after a list change), when Go checks the list again.
  alarm() {
    return this.serial(() => this.call("timeout"));
  }

  // call hands one event to Go with the stored session and applies the
  // answer. The session is saved before any frame is written.
  async call(op, extra = {}, ws = this.ctx.getWebSockets()[0]) {
    if (!ws) return; // the socket is gone
    const session = await this.load(ws);
    if (op !== "open" && !session) return; // closed already
    const body = JSON.stringify({ socket: this.ctx.id.toString(), session, ...extra });
    const res = await go.fetch(new Request(HOSTED + op, { method: "POST", body }), this.env, this.ctx);
    if (!res.ok) throw new Error(`hosted ${op}: ${res.status} ${await res.text()}`);
    const reply = await res.json();
    if (op === "closed") {
      ws.serializeAttachment(null);
      await this.ctx.storage.deleteAll();
      return;
    }
    await this.save(ws, reply.session);
    this.apply(reply.out);
  }

  // The session travels with the socket as its attachment (kept across
  // hibernation, and no billed storage write per event) while it is small:
  // always, unless hundreds of envelopes are in flight; then in storage.
  async load(ws) {
    const a = ws.deserializeAttachment();
    if (a === "storage") return this.ctx.storage.get("session");
    return a ? JSON.parse(a) : undefined;
  }

  async save(ws, session) {
    const json = JSON.stringify(session);
    if (json.length <= ATTACHMENT_MAX) {
      ws.serializeAttachment(json);
    } else {
      await this.ctx.storage.put("session", session);
      ws.serializeAttachment("storage");
    }
  }

  // apply writes what Go returned (relay.Output): frames, then maybe a
  // close; a deadline becomes the alarm; More asks for another page.
  apply(out) {
    const ws = this.ctx.getWebSockets()[0];
    if (!ws) return;
    for (const f of out.frames ?? []) ws.send(fromBase64(f));
    if (out.deadline) this.ctx.storage.setAlarm(out.deadline);
    if (out.close) {
      ws.close(out.close, out.reason ?? "");
      this.serial(() => this.call("closed", {}, ws));
    } else if (out.more) {
      this.serial(() => this.call("deliver"));
    }
  }

  // abort ends the socket when Go could not answer (1011: internal error).
  abort(err) {
    console.error("socket:", err?.stack ?? err);
    for (const ws of this.ctx.getWebSockets()) ws.close(1011, "relay error");
  }
}

export class Mailbox extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS envelopes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, expires INTEGER NOT NULL, data BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires);
      CREATE TABLE IF NOT EXISTS sockets (id TEXT PRIMARY KEY)`);
  }

  // fetch answers Go (workers/store.go): POST /<op> with a JSON body.
  async fetch(req) {
    const a = await req.json();
    switch (new URL(req.url).pathname) {
      case "/enqueue": {
        // The limit is Go's; counting and inserting here is atomic
        // because this object runs one request at a time. Only live
        // envelopes count: those expired at the send's time go first
        // (through the expiry index), so a short-TTL flood, never
        // delivered and never acked, cannot refuse later sends.
        this.sql.exec("DELETE FROM envelopes WHERE expires <= ?", a.now);
        if (this.count() >= a.limit) return Response.json({}, { status: 409 });
        const { seq } = this.sql.exec("INSERT INTO envelopes (expires, data) VALUES (?, ?) RETURNING seq",
          a.expires, fromBase64(a.data)).one();
        await this.armExpiry();
        this.ctx.waitUntil(this.tell("/wake"));
        return Response.json({ seq });
      }
      case "/read": {
        // Up to a.limit envelopes after a.after, but no more than a.bytes
        // of them (at least one): "more" says the page stopped early.
        this.sql.exec("DELETE FROM envelopes WHERE expires <= ?", a.now);
        const items = [];
        let bytes = 0, more = false;
        for (const r of this.sql.exec("SELECT seq, expires, data FROM envelopes WHERE seq > ? ORDER BY seq LIMIT ?", a.after, a.limit)) {
          if (items.length > 0 && bytes + r.data.byteLength > a.bytes) {
            more = true;
            break;
          }
          bytes += r.data.byteLength;
          items.push({ seq: r.seq, expires: r.expires, data: toBase64(new Uint8Array(r.data)) });
        }
        return Response.json({ items, more });
      }
      case "/len":
        // With now: only envelopes whose TTL has not run out (what a
        // device is told is queued at login); the sweep deletes the rest.
        if (a.now) return Response.json({ n: this.sql.exec("SELECT count(*) AS n FROM envelopes WHERE expires > ?", a.now).one().n });
        return Response.json({ n: this.count() });
      case "/delete":
        this.sql.exec("DELETE FROM envelopes WHERE seq IN (SELECT value FROM json_each(?))", JSON.stringify(a.seqs));
        return Response.json({});
      case "/purge": {
        // The device left its account's list: drop its mail and close
        // its sockets with what Go sent (device_revoked).
        const n = this.count();
        this.sql.exec("DELETE FROM envelopes");
        await this.tell("/apply", a.out);
        this.sql.exec("DELETE FROM sockets");
        return Response.json({ n });
      }
      case "/push":
        await this.tell("/apply", a.out);
        return Response.json({});
      case "/subscribe":
        this.sql.exec("INSERT OR IGNORE INTO sockets (id) VALUES (?)", a.socket);
        return Response.json({});
      case "/unsubscribe":
        this.sql.exec("DELETE FROM sockets WHERE id = ?", a.socket);
        return Response.json({});
    }
    return new Response("unknown mailbox operation", { status: 404 });
  }

  count() {
    return this.sql.exec("SELECT count(*) AS n FROM envelopes").one().n;
  }

  // tell posts to every subscribed Socket; those that answer 410 are gone.
  async tell(path, body) {
    const ids = this.sql.exec("SELECT id FROM sockets").toArray().map((r) => r.id);
    await Promise.all(ids.map(async (id) => {
      const stub = this.env.SOCKETS.get(this.env.SOCKETS.idFromString(id));
      const res = await stub.fetch("https://socket" + path, { method: "POST", body: JSON.stringify(body ?? {}) });
      if (res.status === 410) this.sql.exec("DELETE FROM sockets WHERE id = ?", id);
    }));
  }

  // Expired envelopes go at the earliest expiry, so an abandoned device's
  // mailbox does not keep them forever.
  async armExpiry() {
    const next = this.sql.exec("SELECT min(expires) AS t FROM envelopes").one().t;
    const cur = await this.ctx.storage.getAlarm();
    if (next != null && (cur == null || next < cur)) await this.ctx.storage.setAlarm(next);
  }

  async alarm() {
    this.sql.exec("DELETE FROM envelopes WHERE expires <= ?", Date.now());
    await this.armExpiry();
  }
}

// SUBPROTOCOL is relay.Subprotocol (Go package relay).
const SUBPROTOCOL = "parley.relay.v1";

// ATTACHMENT_MAX keeps a serialized session under the 2,048-byte limit of
// a WebSocket attachment.
const ATTACHMENT_MAX = 1900;

// Go's encoding/json carries []byte as standard base64.
function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
