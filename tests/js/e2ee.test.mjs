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
  const state = await sealFrame(keys.state, V.key_id, new TextEncoder().encode(V.state.text), 0, hex(V.iv));
  assert.equal(toHex(state), V.state.sealed);
});

test("the relay's bytes stay clear: a keyframe's first ten and a delta frame's first three but bytes 1 and 2, an Opus packet's first one", () => {
  assert.equal(clearBytes("video", "key"), 10);
  assert.equal(clearBytes("video", "delta"), 3);
  assert.equal(clearBytes("audio", undefined), 1);
  for (const frame of V.frames) {
    const wire = hex(frame.sealed), plain = hex(frame.plain);
    assert.equal(wire[0], plain[0], frame.name);
    if (frame.clear < 3) continue;
    assert.deepEqual([...wire.subarray(1, 3)], [0xff, 0xff], frame.name);
    assert.deepEqual([...wire.subarray(3, frame.clear)], [...plain.subarray(3, frame.clear)], frame.name);
  }
});

test("a sealed VP8 frame's first-partition size is larger than the frame, so a decoder on the way refuses it", async () => {
  const keys = await frameKeys(hex(V.material));
  for (const length of [3, 4, 10, 11, 200, 1200, 65_536, 400_000]) {
    for (const type of ["key", "delta"]) {
      const frame = globalThis.crypto.getRandomValues(new Uint8Array(Math.min(length, 65_536)));
      const plain = new Uint8Array(length);
      plain.set(frame);
      plain[0] = type === "key" ? plain[0] & 0xfe : plain[0] | 0x01;
      const sealed = await sealFrame(keys.frame, V.key_id, plain, clearBytes("video", type));
      const partition = (sealed[0] | (sealed[1] << 8) | (sealed[2] << 16)) >> 5;
      assert.ok(partition > sealed.length, `${type} frame of ${length} bytes: ${partition}`);
      assert.deepEqual(await openFrame(keys.frame, sealed), plain, `${type} frame of ${length} bytes`);
    }
  }
});

test("a frame under another key, or with any byte changed, is refused", async () => {
  const keys = await frameKeys(hex(V.material));
  const other = await frameKeys(new Uint8Array(32).fill(7));
  const sealed = hex(V.frames[0].sealed);
  await assert.rejects(openFrame(other.frame, sealed));
  await assert.rejects(openFrame(keys.chat, sealed)); // a frame is no chat message
  for (const at of [0, 1, 2, 3, 9, 10, sealed.length - 25, sealed.length - 6, sealed.length - 3, sealed.length - 2]) {
    const changed = sealed.slice();
    changed[at] ^= 0x01;
    await assert.rejects(openFrame(keys.frame, changed), `byte ${at}`);
  }
  assert.equal(readFrame(hex(V.frames[0].plain)), null); // an unencrypted frame is not mistaken for one
  const first = sealed.slice();
  first[first.length - 1] = 0xe1; // version 1, which left bytes 1 and 2 clear, is not read
  assert.equal(readFrame(first), null);
  await assert.rejects(openFrame(keys.frame, first));
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
  const server = { swap: null, dropAcks: false };
  const deliver = (to, message) => { const page = pages.get(to); if (page) page.inbox.push(message); };
  async function join(id, { x25519 = true } = {}) {
    const identity = x25519 ? await makeIdentity() : await identityOf(V.keys.bob, { x25519: false });
    const page = { id, session: `${id}-s`, inbox: [], worker: { send: null, receive: new Map() }, codes: [], acked: [] };
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
        sendKeyAck: (to, toSession, keyId) => {
          page.acked.push({ to, keyId });
          if (!server.dropAcks) deliver(to, { type: "ack", from: id, session: page.session, key_id: keyId });
        },
      },
    });
    pages.set(id, page);
    return page;
  }
  // `timers: false` delivers messages only: what holds before a switch timer fires;
  // `acks: false` holds back acknowledgements (they stay in the inboxes).
  async function settle({ timers: runTimers = true, acks = true } = {}) {
    for (let round = 0; round < 50; round += 1) {
      let busy = false;
      for (const page of pages.values()) {
        for (const m of [...page.inbox]) {
          if (m.type === "ack" && !acks) continue;
          busy = true;
          page.inbox.splice(page.inbox.indexOf(m), 1);
          if (m.type === "public") await page.keys.publicKey(m);
          else if (m.type === "ack") page.keys.keyAck(m);
          else await page.keys.wrappedKey(m);
        }
      }
      while (runTimers && timers.length) { busy = true; timers.shift()(); }
      if (!busy) return;
    }
    throw new Error("the pages never settled");
  }
  async function roster(options) {
    const list = [...pages.values()].map((p) => ({ id: p.id, session: p.session }));
    for (const page of pages.values()) await page.keys.participants(list, page.id);
    await settle(options);
  }
  // Can `reader` open a frame `sender` seals now?
  async function reads(reader, sender) {
    const entry = reader.worker.receive.get(sender.worker.send);
    return Boolean(entry) && entry.from === sender.id;
  }
  return { pages, server, timers, join, roster, settle, reads, leave: (id) => pages.delete(id) };
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

test("the first key anyone else gets is used at once; a key others hold is kept until every receiver acknowledged the new one", async () => {
  const c = call();
  const a = await c.join("u1");
  await c.roster();
  const alone = a.worker.send;
  const b = await c.join("u2");
  // Without any switch timer firing, both send under a key the other holds: nobody else
  // held their first keys, so no frame waits under a key nobody can open.
  await c.roster({ timers: false });
  assert.notEqual(a.worker.send, alone);
  await everyoneReadsEveryone(c);
  const shared = { a: a.worker.send, b: b.worker.send };
  const d = await c.join("i3");
  await c.roster({ timers: false, acks: false });
  assert.equal(a.worker.send, shared.a, "u2 holds u1's key: u1 keeps it until the new one reached everyone");
  assert.ok(await c.reads(b, a) && await c.reads(a, b));
  assert.ok(d.acked.some((ack) => ack.to === "u1"), "the newcomer acknowledged u1's new key");
  // The acknowledgements alone switch everyone, no timer fired: the newcomer reads everyone
  // as soon as it has their keys, not a second later.
  await c.settle({ timers: false });
  assert.notEqual(a.worker.send, shared.a);
  assert.equal(a.keys.lastSwitch.by, "acks");
  assert.ok(!d.worker.receive.has(shared.a) && !d.worker.receive.has(shared.b), "no key from before the join");
  await everyoneReadsEveryone(c);
  // A timer left over from a switch the acknowledgements made changes nothing.
  const now = { a: a.worker.send, b: b.worker.send, d: d.worker.send };
  await c.settle();
  assert.deepEqual({ a: a.worker.send, b: b.worker.send, d: d.worker.send }, now);
});

test("a receiver that never acknowledges holds the switch up only until the timer", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2");
  await c.roster();
  const shared = a.worker.send;
  c.server.dropAcks = true; // a server that swallows acknowledgements (or an old page)
  const d = await c.join("i3");
  await c.roster({ timers: false });
  assert.equal(a.worker.send, shared, "no acknowledgement came: u1 still waits");
  assert.ok(c.timers.length > 0);
  await c.settle();
  assert.notEqual(a.worker.send, shared, "the timer switched");
  assert.equal(a.keys.lastSwitch.by, "timer");
  await everyoneReadsEveryone(c);
  assert.ok(b && !d.worker.receive.has(shared));
});

test("an acknowledgement of another key, or from someone else's session, switches nothing", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2");
  await c.roster();
  const shared = a.worker.send;
  const d = await c.join("i3");
  await c.roster({ timers: false, acks: false });
  const newest = (page) => page.acked.filter((ack) => ack.to === "u1").at(-1).keyId;
  assert.equal(newest(b), newest(d));
  a.keys.keyAck({ from: "i3", session: "i3-s", key_id: newest(d) });
  a.keys.keyAck({ from: "u2", session: "u2-s", key_id: shared });
  a.keys.keyAck({ from: "u2", session: "elsewhere", key_id: newest(b) });
  a.keys.keyAck({ from: "x9", session: "x9-s", key_id: newest(b) });
  assert.equal(a.worker.send, shared, "u2 has not acknowledged the new key");
  a.keys.keyAck({ from: "u2", session: "u2-s", key_id: newest(b) });
  assert.equal(a.worker.send, newest(b), "both have: u1 switches");
});

test("mute state is sealed under a key of its own: the others open it, naming the sender", async () => {
  const c = call();
  const a = await c.join("u1"), b = await c.join("u2");
  await c.roster();
  const sealed = await a.keys.sealState({ audio: false, video: true });
  assert.ok(!Buffer.from(fromBase64(sealed)).toString("latin1").includes("audio"));
  assert.deepEqual(await b.keys.openState(sealed), { from: "u1", audio: false, video: true });
  assert.equal(await b.keys.openChat(sealed), null, "a sealed state is no chat message");
  assert.equal(await b.keys.openState(await a.keys.sealChat("{\"audio\":true,\"video\":true}")), null,
    "nor chat a state");
  const stranger = await c.join("x9");
  assert.equal(await stranger.keys.openState(sealed), null);
});
