// The call page's signalling client (static/call/protocol.js) without a browser: a fake
// WebSocket and fake timers stand in for the real ones. Run: node --test tests/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { CallProtocol, PROBE_MS, PROTOCOL_VERSION, reconnectPause } from "../../static/call/protocol.js";

const URL = "ws://127.0.0.1/c/7/call/ws";
const WELCOME = { type: "welcome", version: 1, id: "u3", session: "s3", ice_servers: [{ urls: ["stun:x"] }], ice_ttl_seconds: 100 };

// Sockets are made by the protocol; the test plays the server on the newest one.
function fakeWebSocketClass() {
  return class FakeWebSocket {
    static OPEN = 1;
    static made = [];
    readyState = 0;
    sent = [];
    closedByClient = false;
    #listeners = {};

    constructor(url) {
      this.url = url;
      FakeWebSocket.made.push(this);
    }

    addEventListener(type, listener) { (this.#listeners[type] ||= []).push(listener); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.closedByClient = true; }

    fire(type, event = {}) { for (const listener of this.#listeners[type] || []) listener(event); }
    open() { this.readyState = 1; this.fire("open"); }
    deliver(message) { this.fire("message", { data: typeof message === "string" ? message : JSON.stringify(message) }); }
    drop(code) { this.readyState = 3; this.fire("close", { code }); }
  };
}

function fakeTimers() {
  let nextId = 1;
  const pending = new Map();
  return {
    setTimeout(fn, ms) { pending.set(nextId, { fn, ms }); return nextId++; },
    clearTimeout(id) { pending.delete(id); },
    delays() { return [...pending.values()].map((timer) => timer.ms); },
    // Runs the timers that are due now, as if their pauses had passed.
    runAll() {
      const due = [...pending.entries()];
      pending.clear();
      due.forEach(([, timer]) => timer.fn());
    },
  };
}

// Lets every promise chain that can go on without a timer run to its end.
const settle = () => new Promise((resolve) => setImmediate(resolve));

function callWith({ refused } = {}) {
  const WebSocket = fakeWebSocketClass();
  const timers = fakeTimers();
  const protocol = new CallProtocol(URL, { WebSocket, ...timers, refused });
  const events = [];
  for (const type of ["welcome", "participants", "error", "reconnecting", "replaced", "ended", "outdated", "refused", "fault", "chat"]) {
    protocol.on(type, (value) => { events.push(value === undefined ? type : [type, value]); });
  }
  const socket = () => WebSocket.made.at(-1);
  return { protocol, WebSocket, timers, events, socket };
}

function joined() {
  const call = callWith();
  call.protocol.join();
  call.socket().open();
  call.socket().deliver(WELCOME);
  return call;
}

test("joins with the protocol version as soon as the socket opens", () => {
  const { protocol, WebSocket, socket } = callWith();
  protocol.join();
  assert.equal(WebSocket.made.length, 1);
  assert.equal(socket().url, URL);
  assert.deepEqual(socket().sent, []);
  socket().open();
  assert.deepEqual(socket().sent, [{ type: "join", version: PROTOCOL_VERSION }]);
  assert.equal(PROTOCOL_VERSION, 1);
});

test("sends nothing while the socket is not open", () => {
  const { protocol, socket } = callWith();
  protocol.join();
  protocol.sendChat("Hallo");
  protocol.reportP2pFailed();
  assert.deepEqual(socket().sent, []);
});

test("welcome gives the participant id, session and ICE servers, and fresh credentials come at 80 % of their lifetime", async () => {
  const { protocol, timers, events, socket } = joined();
  await settle();
  assert.equal(protocol.me, "u3");
  assert.equal(protocol.session, "s3");
  assert.deepEqual(protocol.iceServers, WELCOME.ice_servers);
  assert.equal(events[0][0], "welcome");
  assert.deepEqual(timers.delays(), [80000]);
  timers.runAll();
  assert.deepEqual(socket().sent.at(-1), { type: "refresh_ice" });

  const refreshed = [];
  protocol.on("ice-servers", (servers) => { refreshed.push(servers); });
  socket().deliver({ type: "ice_servers", ice_servers: [{ urls: ["turn:y"] }], ice_ttl_seconds: 10 });
  await settle();
  assert.deepEqual(refreshed, [[{ urls: ["turn:y"] }]]);
  assert.deepEqual(protocol.iceServers, [{ urls: ["turn:y"] }]);
  assert.deepEqual(timers.delays(), [8000]);
});

test("a message waits until the handlers of the one before it have finished, even async ones", async () => {
  const { protocol, socket } = joined();
  const handled = [];
  let answerArrives;
  protocol.on("description", async (message) => {
    handled.push(`${message.type} started`);
    await new Promise((resolve) => { answerArrives = resolve; });
    handled.push(`${message.type} done`);
  });
  protocol.on("candidate", (message) => { handled.push(`candidate ${message.candidate.candidate}`); });
  socket().deliver({ type: "offer", from: "u4", session: "s4", sdp: "v=0" });
  socket().deliver({ type: "candidate", from: "u4", session: "s4", candidate: { candidate: "c1" } });
  socket().deliver({ type: "candidate", from: "u4", session: "s4", candidate: { candidate: "c2" } });
  await settle();
  assert.deepEqual(handled, ["offer started"]);
  answerArrives();
  await settle();
  assert.deepEqual(handled, ["offer started", "offer done", "candidate c1", "candidate c2"]);
});

test("each message type reaches its own listeners, unknown types none", async () => {
  const { protocol, events, socket } = joined();
  const seen = [];
  for (const type of ["participants", "description", "candidate", "relay-answer", "relay-sources", "relay-moved", "mute", "chat", "public-key", "wrapped-key"]) {
    protocol.on(type, (value) => { seen.push([type, value]); });
  }
  const publishers = [{ id: "u4", kinds: ["audio"], generation: 1 }];
  socket().deliver({ type: "participants", topology: "p2p", reason: "", participants: [] });
  socket().deliver({ type: "answer", from: "u4", session: "s4", sdp: "v=0" });
  socket().deliver({ type: "relay_answer", purpose: "publish", receive_from: [], sdp: "v=0" });
  socket().deliver({ type: "relay_sources", publishers, version: 1 });
  socket().deliver({ type: "relay_moved" });
  socket().deliver({ type: "mute", from: "u4", audio: false, video: true });
  socket().deliver({ type: "e2ee_public", from: "u4", session: "s4", keys: null });
  socket().deliver({ type: "e2ee_key", from: "u4", session: "s4", key_id: 7, wrapped: "AAAA" });
  socket().deliver({ type: "from_a_newer_server" });
  await settle();
  assert.deepEqual(seen.map(([type]) => type), ["participants", "description", "relay-answer", "relay-sources", "relay-moved", "mute", "public-key", "wrapped-key"]);
  assert.deepEqual(seen[3][1], { type: "relay_sources", publishers, version: 1 });
  assert.ok(!events.some((event) => event[0] === "fault"));
});

test("server errors reach the owner; a handler that throws or an unreadable frame is reported and the next message still comes", async () => {
  const { protocol, events, socket } = joined();
  protocol.on("mute", () => { throw new Error("broken handler"); });
  const error = { type: "error", code: "relay_failed", message: "…", about: "relay_offer", purpose: "receive" };
  socket().deliver(error);
  socket().deliver({ type: "mute", from: "u4", audio: true, video: true });
  socket().deliver("{not json");
  socket().deliver({ type: "chat", from: "u4", name: "Erika", text: "Hallo", at: "2026-01-12T09:14:03+00:00" });
  await settle();
  const types = events.map((event) => event[0]);
  assert.deepEqual(types, ["welcome", "error", "fault", "fault", "chat"]);
  assert.deepEqual(events[1][1], error);
  assert.equal(events[2][1].message, "broken handler");
  assert.ok(events[3][1] instanceof SyntaxError);
});

test("sending helpers write the documented messages", () => {
  const { protocol, socket } = joined();
  protocol.sendMute({ audio: false, video: true });
  protocol.sendChat("Hallo");
  protocol.sendDescription("u4", "s4", { type: "offer", sdp: "v=0" });
  protocol.sendCandidate("u4", "s4", { candidate: "c1", sdpMid: "0", sdpMLineIndex: 0 });
  protocol.sendRelayOffer("receive", "v=0", ["u4"]);
  protocol.reportP2pFailed();
  protocol.sendSealedChat("AAAA");
  protocol.sendPublicKey("u4", "s4", { p256: "BA==" });
  protocol.sendWrappedKey("u4", "s4", 7, "AAAA");
  assert.deepEqual(socket().sent.slice(1), [
    { type: "mute", audio: false, video: true },
    { type: "chat", text: "Hallo" },
    { type: "offer", to: "u4", to_session: "s4", sdp: "v=0" },
    { type: "candidate", to: "u4", to_session: "s4", candidate: { candidate: "c1", sdpMid: "0", sdpMLineIndex: 0 } },
    { type: "relay_offer", purpose: "receive", sdp: "v=0", receive_from: ["u4"] },
    { type: "p2p_failed" },
    { type: "sealed_chat", sealed: "AAAA" },
    { type: "e2ee_public", to: "u4", to_session: "s4", keys: { p256: "BA==" } },
    { type: "e2ee_key", to: "u4", to_session: "s4", key_id: 7, wrapped: "AAAA" },
  ]);
});

test("after a drop it reconnects with growing pauses, and a welcome starts the pauses over", async () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(reconnectPause), [1000, 2000, 4000, 8000, 10000, 10000]);
  const { WebSocket, timers, events, socket } = joined();
  await settle();
  const pauses = [];
  for (let attempt = 0; attempt < 6; attempt += 1) {
    socket().drop(1006);
    await settle();
    pauses.push(...timers.delays().filter((ms) => ms !== 80000));
    timers.runAll();
  }
  assert.deepEqual(pauses, [1000, 2000, 4000, 8000, 10000, 10000]);
  assert.equal(WebSocket.made.length, 7);
  assert.equal(events.filter((event) => event === "reconnecting").length, 6);
  // The handshake of a dropped socket failed; a page that still answers means offline, not refused.
  assert.ok(!events.includes("refused"));

  socket().open();
  assert.deepEqual(socket().sent, [{ type: "join", version: 1 }]);
  socket().deliver(WELCOME);
  await settle();
  socket().drop(1006);
  await settle();
  assert.ok(timers.delays().includes(1000));
});

test("a flood's close (1008) and an oversized frame's (1009) are reconnected after a pause", async () => {
  for (const code of [1008, 1009]) {
    const { WebSocket, timers, socket } = joined();
    socket().drop(code);
    await settle();
    assert.ok(timers.delays().includes(1000), `close ${code}`);
    timers.runAll();
    assert.equal(WebSocket.made.length, 2);
  }
});

test("a stopping server's close (1012) is reconnected at once", async () => {
  const { WebSocket, timers, events, socket } = joined();
  socket().drop(1012);
  await settle();
  assert.ok(timers.delays().includes(100) && !timers.delays().includes(1000), timers.delays());
  assert.ok(events.includes("reconnecting"));
  timers.runAll();
  assert.equal(WebSocket.made.length, 2);
});

test("a handshake the page says was refused reloads instead of retrying", async () => {
  const asked = [];
  const { protocol, WebSocket, timers, events, socket } = callWith({ refused: async () => { asked.push(true); return true; } });
  protocol.join();
  socket().drop(1006);
  await settle();
  assert.equal(asked.length, 1);
  assert.deepEqual(events, ["reconnecting", "refused"]);
  timers.runAll();
  assert.equal(WebSocket.made.length, 1);
});

test("the page is not asked about a socket that had opened", async () => {
  const asked = [];
  const { socket } = (() => {
    const call = callWith({ refused: async () => { asked.push(true); return true; } });
    call.protocol.join();
    call.socket().open();
    return call;
  })();
  socket().drop(1006);
  await settle();
  assert.deepEqual(asked, []);
});

test("no reconnect after leave, and leave stops the credential refresh", async () => {
  const { protocol, WebSocket, timers, socket } = joined();
  await settle();
  protocol.leave();
  assert.deepEqual(socket().sent.at(-1), { type: "leave" });
  assert.deepEqual(timers.delays(), []);
  socket().drop(1000);
  await settle();
  assert.deepEqual(timers.delays(), []);
  protocol.join();
  assert.equal(WebSocket.made.length, 1);
});

test("leave during the pause before a reconnect cancels it; a socket that opens after leave is closed unjoined", async () => {
  const { protocol, WebSocket, timers, socket } = joined();
  socket().drop(1006);
  await settle();
  protocol.leave();
  assert.deepEqual(timers.delays(), []);

  const late = callWith();
  late.protocol.join();
  late.protocol.leave();
  late.socket().open();
  assert.deepEqual(late.socket().sent, []);
  assert.ok(late.socket().closedByClient);
  assert.equal(WebSocket.made.length, 1);
});

test("nothing is handled after leave", async () => {
  const { protocol, events, socket } = joined();
  await settle();
  protocol.leave();
  socket().deliver({ type: "participants", topology: "p2p", reason: "", participants: [] });
  await settle();
  assert.deepEqual(events.map((event) => event[0] || event), ["welcome"]);
});

test("closes 4000, 4001 and 4002 end the call for this page without reconnecting", async () => {
  for (const [code, event] of [[4000, "replaced"], [4001, "ended"], [4002, "outdated"]]) {
    const { WebSocket, timers, events, socket } = joined();
    await settle();
    socket().drop(code);
    await settle();
    assert.deepEqual(events.slice(1), [event], `close ${code}`);
    assert.deepEqual(timers.delays(), [], `close ${code}`);
    assert.equal(WebSocket.made.length, 1);
  }
});

test("replaced and ended messages, then their close, are told once", async () => {
  for (const [type, code] of [["replaced", 4000], ["ended", 4001]]) {
    const { timers, events, socket } = joined();
    socket().deliver({ type });
    await settle();
    socket().drop(code);
    await settle();
    assert.deepEqual(events.slice(1), [type]);
    assert.deepEqual(timers.delays(), []);
  }
});

test("a close of a socket already replaced by a newer one is ignored", async () => {
  const { WebSocket, timers, events, socket } = joined();
  const first = socket();
  first.drop(1006);
  await settle();
  timers.runAll();
  assert.equal(WebSocket.made.length, 2);
  first.drop(1006);
  await settle();
  assert.equal(events.filter((event) => event === "reconnecting").length, 1);
});

test("a probe that the server answers keeps the socket; one left unanswered for 3 s gives it up for a new one", async () => {
  assert.equal(PROBE_MS, 3000);
  const { protocol, WebSocket, timers, events, socket } = joined();
  await settle();
  const first = socket();
  first.sent.length = 0;
  protocol.probe();
  protocol.probe(); // the media of two connections stopped at once: one question
  assert.deepEqual(first.sent, [{ type: "refresh_ice" }]);
  assert.deepEqual(timers.delays().filter((ms) => ms !== 80000), [3000]);
  first.deliver({ type: "ice_servers", ice_servers: [], ice_ttl_seconds: 100 });
  await settle();
  assert.deepEqual(timers.delays().filter((ms) => ms !== 80000), [], "answered: nothing to give up");

  // A line that dropped and came back without its router's mappings: the socket hears nothing.
  protocol.probe();
  timers.runAll();
  await settle();
  assert.ok(first.closedByClient);
  assert.deepEqual(events.filter((event) => event === "reconnecting"), ["reconnecting"]);
  assert.deepEqual(timers.delays(), [100], "rejoins at once");
  timers.runAll();
  assert.equal(WebSocket.made.length, 2);
  // The dead socket's close, when it finally comes, is old news.
  first.drop(1006);
  await settle();
  assert.equal(events.filter((event) => event === "reconnecting").length, 1);
  assert.equal(WebSocket.made.length, 2);
  socket().open();
  assert.deepEqual(socket().sent, [{ type: "join", version: 1 }]);
});

test("a socket whose close comes while a probe waits rejoins at once; without a probe after a pause", async () => {
  const { protocol, timers, socket } = joined();
  await settle();
  protocol.probe();
  socket().drop(1006); // the line is back, and the server's reset came through
  await settle();
  assert.deepEqual(timers.delays().filter((ms) => ms !== 80000), [100]);
  timers.runAll();
  socket().open();
  socket().deliver(WELCOME);
  await settle();
  socket().drop(1006);
  await settle();
  assert.deepEqual(timers.delays().filter((ms) => ms !== 80000), [1000]);
});

test("no probe on a socket that is not open, nor after leave", async () => {
  const { protocol, timers, socket } = callWith();
  protocol.join();
  protocol.probe();
  assert.deepEqual(socket().sent, []);
  socket().open();
  socket().deliver(WELCOME);
  await settle();
  protocol.leave();
  protocol.probe();
  assert.deepEqual(socket().sent.map((m) => m.type), ["join", "leave"]);
  assert.deepEqual(timers.delays(), []);
});
