// End-to-end encryption without a browser (static/call/frame-cipher.js, key-exchange.js,
// call-keys.js): the documented test vectors (tests/js/e2ee-vectors.json, docs/e2ee.md),
// frames that are tampered with or sealed under another key, and the key schedule of a call
// whose pages talk through a fake server: join, leave, a newcomer, a swapped public key.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { CallKeys, KEEP_KEYS } from "../../static/call/call-keys.js";
import { clearBytes, frameKeys, openFrame, readFrame, sealFrame } from "../../static/call/frame-cipher.js";
import {
  fromBase64, makeIdentity, unwrapMaterial, validPublished, verificationCode, wrappingKey,
} from "../../static/call/key-exchange.js";
import { identityOf } from "./e2ee-identity.mjs";

const V = JSON.parse(readFileSync(new URL("./e2ee-vectors.json", import.meta.url), "utf8"));
const hex = (text) => Uint8Array.from(text.match(/../g), (byte) => parseInt(byte, 16));
const toHex = (bytes) => Buffer.from(bytes).toString("hex");

test("frames are sealed and opened as the test vectors say", async () => {
  const keys = await frameKeys(hex(V.material));
  for (const frame of V.frames) {
    const sealed = await sealFrame(keys.frame, V.key_id, hex(frame.plain), frame.clear, hex(V.iv));
    assert.equal(toHex(sealed), frame.sealed, frame.name);
    assert.equal(readFrame(sealed).keyId, V.key_id);
    assert.equal(toHex(await openFrame(keys.frame, hex(frame.sealed))), frame.plain, frame.name);
  }
  const chat = await sealFrame(keys.chat, V.key_id, new TextEncoder().encode(V.chat.text), 0, hex(V.iv));
  assert.equal(toHex(chat), V.chat.sealed);
});

test("the relay's bytes stay clear: a keyframe's first ten, a delta frame's and an Opus packet's first one", () => {
  assert.equal(clearBytes("video", "key"), 10);
  assert.equal(clearBytes("video", "delta"), 1);
  assert.equal(clearBytes("audio", undefined), 1);
  for (const frame of V.frames) assert.equal(frame.sealed.slice(0, 2 * frame.clear), frame.plain.slice(0, 2 * frame.clear));
});

test("a frame under another key, or with any byte changed, is refused", async () => {
  const keys = await frameKeys(hex(V.material));
  const other = await frameKeys(new Uint8Array(32).fill(7));
  const sealed = hex(V.frames[0].sealed);
  await assert.rejects(openFrame(other.frame, sealed));
  await assert.rejects(openFrame(keys.chat, sealed)); // a frame is no chat message
  for (const at of [0, 9, 10, sealed.length - 25, sealed.length - 6, sealed.length - 3]) {
    const changed = sealed.slice();
    changed[at] ^= 0x01;
    await assert.rejects(openFrame(keys.frame, changed), `byte ${at}`);
  }
  assert.equal(readFrame(hex(V.frames[0].plain)), null); // an unencrypted frame is not mistaken for one
  await assert.rejects(openFrame(keys.frame, hex(V.frames[0].plain)));
});

test("wrapped keys open with the receiver's side of each curve's vectors", async () => {
  for (const wrap of V.wraps) {
    const x25519 = wrap.curve === "x25519";
    const alice = await identityOf(V.keys.alice, { x25519 }), bob = await identityOf(V.keys.bob, { x25519 });
    const key = await wrappingKey(bob, alice.published, false);
    assert.equal(toHex(await unwrapMaterial(key, wrap.key_id, hex(wrap.wrapped))), V.material, wrap.curve);
    await assert.rejects(unwrapMaterial(key, wrap.key_id + 1, hex(wrap.wrapped)), "the key id is bound");
    // The other direction has its own key.
    await assert.rejects(unwrapMaterial(await wrappingKey(bob, alice.published, true), wrap.key_id, hex(wrap.wrapped)));
  }
});

test("the verification code is the documented one, in any order", async () => {
  const alice = await identityOf(V.keys.alice), bob = await identityOf(V.keys.bob);
  assert.equal(await verificationCode([alice.published, bob.published]), V.code.both_curves);
  assert.equal(await verificationCode([bob.published, alice.published]), V.code.both_curves);
  assert.match(V.code.both_curves, /^\d{5} \d{5} \d{5} \d{5}$/);
});

test("public keys of another shape are refused", async () => {
  const { published } = await makeIdentity();
  assert.ok(validPublished(published));
  assert.ok(published.x25519, "node 20 has X25519");
  assert.ok(!validPublished({ x25519: published.x25519 }), "P-256 is always there");
  assert.ok(!validPublished({ ...published, p256: published.x25519 }));
  assert.ok(!validPublished({ ...published, rsa: published.p256 }));
  assert.ok(!validPublished({ p256: "not base64!" }));
});

// Pages that pass their messages through a server the test controls.
function call() {
  const pages = new Map();
  const timers = [];
  const server = { swap: null };
  const deliver = (to, message) => { const page = pages.get(to); if (page) page.inbox.push(message); };
  async function join(id, { x25519 = true } = {}) {
    const identity = x25519 ? await makeIdentity() : await identityOf(V.keys.bob, { x25519: false });
    const page = { id, session: `${id}-s`, inbox: [], worker: { send: null, receive: new Map() }, codes: [] };
    page.keys = new CallKeys({
      identity,
      setTimeout: (fn) => timers.push(fn), clearTimeout: () => {},
      onCode: (code, changed) => page.codes.push({ code, changed }),
      post: (m) => {
        if (m.type === "send-key") page.worker.send = m.keyId;
        if (m.type === "receive-key") page.worker.receive.set(m.keyId, m);
        if (m.type === "drop-key") page.worker.receive.delete(m.keyId);
      },
      signals: {
        sendPublicKey: (to, toSession, keys) => deliver(to, { type: "public", from: id, session: page.session,
          keys: server.swap && server.swap.of === id ? server.swap.keys : keys }),
        sendWrappedKey: (to, toSession, keyId, wrapped) => deliver(to, { type: "wrapped", from: id, session: page.session, key_id: keyId, wrapped }),
      },
    });
    pages.set(id, page);
    return page;
  }
  async function settle() {
    for (let round = 0; round < 50; round += 1) {
      let busy = false;
      for (const page of pages.values()) {
        while (page.inbox.length) {
          busy = true;
          const m = page.inbox.shift();
          if (m.type === "public") await page.keys.publicKey(m); else await page.keys.wrappedKey(m);
        }
      }
      while (timers.length) { busy = true; timers.shift()(); }
      if (!busy) return;
    }
    throw new Error("the pages never settled");
  }
  async function roster() {
    const list = [...pages.values()].map((p) => ({ id: p.id, session: p.session }));
    for (const page of pages.values()) await page.keys.participants(list, page.id);
    await settle();
  }
  // Can `reader` open a frame `sender` seals now?
  async function reads(reader, sender) {
    const entry = reader.worker.receive.get(sender.worker.send);
    return Boolean(entry) && entry.from === sender.id;
  }
  return { pages, server, join, roster, settle, reads, leave: (id) => pages.delete(id) };
}

async function everyoneReadsEveryone(c) {
  for (const reader of c.pages.values()) {
    for (const sender of c.pages.values()) {
      if (reader !== sender) assert.ok(await c.reads(reader, sender), `${reader.id} reads ${sender.id}`);
    }
  }
}

test("three pages agree on keys and codes; a newcomer gets only keys made after it came", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2");
  await c.roster();
  await everyoneReadsEveryone(c);
  const before = new Set([a.worker.send, b.worker.send]);
  const d = await c.join("i3", { x25519: false }); // a browser without X25519 meets over P-256
  await c.roster();
  await everyoneReadsEveryone(c);
  for (const keyId of before) assert.ok(!d.worker.receive.has(keyId), "no key from before the join");
  assert.ok(!before.has(a.worker.send) && !before.has(b.worker.send), "everyone moved to a new key");
  const codes = [...c.pages.values()].map((p) => p.keys.code);
  assert.ok(codes[0] && codes.every((code) => code === codes[0]), codes.join(" / "));
  assert.ok(a.codes.at(-1).changed, "a page that showed a code says it changed");
});

test("after a leave the others move to keys the one who left never got", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2"), d = await c.join("i3");
  await c.roster();
  const old = { a: a.worker.send, b: b.worker.send };
  c.leave("i3");
  await c.roster();
  assert.notEqual(a.worker.send, old.a);
  assert.notEqual(b.worker.send, old.b);
  for (const keyId of [a.worker.send, b.worker.send]) assert.ok(!d.worker.receive.has(keyId));
  await everyoneReadsEveryone(c);
  assert.ok([...a.worker.receive.values()].every((m) => m.from === "u2"), "the leaver's keys are dropped");
});

test("a receiver keeps only the newest keys of each sender", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2");
  await c.roster();
  for (let i = 0; i < 5; i += 1) { await c.join(`g${i}`); await c.roster(); c.leave(`g${i}`); await c.roster(); }
  assert.ok([...a.worker.receive.values()].filter((m) => m.from === "u2").length <= KEEP_KEYS);
  await everyoneReadsEveryone(c);
  assert.ok(b);
});

test("a public key swapped by the server: codes differ and nobody reads the swapped one", async () => {
  const c = call();
  c.server.swap = { of: "i3", keys: (await makeIdentity()).published };
  const a = await c.join("u1"), b = await c.join("u2"), d = await c.join("i3");
  await c.roster();
  assert.equal(a.keys.code, b.keys.code);
  assert.notEqual(d.keys.code, a.keys.code);
  assert.ok(await c.reads(a, b) && await c.reads(b, a));
  for (const reader of [a, b]) assert.ok(!(await c.reads(reader, d)), `${reader.id} cannot read i3`);
  for (const sender of [a, b]) assert.ok(!(await c.reads(d, sender)), `i3 cannot read ${sender.id}`);
});

test("chat is sealed with the sender's key and opened by the others only", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2");
  await c.roster();
  const sealed = await a.keys.sealChat("Bitte die Tabletten morgens nehmen.");
  assert.ok(!Buffer.from(fromBase64(sealed)).toString("latin1").includes("Tabletten"));
  assert.equal(await b.keys.openChat(sealed), "Bitte die Tabletten morgens nehmen.");
  assert.equal(await a.keys.openChat(sealed), "Bitte die Tabletten morgens nehmen.", "the sender reads its own");
  const stranger = await c.join("x9");
  assert.equal(await stranger.keys.openChat(sealed), null);
  assert.equal(await b.keys.openChat("AAAA"), null);
});
