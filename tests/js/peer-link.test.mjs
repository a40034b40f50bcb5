// The direct link's recovery from a dropped line (static/call/peer-link.js) without a
// browser: a fake RTCPeerConnection whose state the test sets, and node's fake clock.

import assert from "node:assert/strict";
import { mock, test } from "node:test";

class FakeConnection {
  static made = [];
  #listeners = {};
  connectionState = "new";
  signalingState = "stable";
  localDescription = null;
  restartIces = 0;
  offers = 0;
  constructor() { FakeConnection.made.push(this); }
  addEventListener(type, listener) { (this.#listeners[type] ||= []).push(listener); }
  fire(type) { for (const listener of this.#listeners[type] || []) listener({}); }
  addTransceiver() { return { sender: {}, receiver: {} }; }
  getTransceivers() { return []; }
  restartIce() {
    this.restartIces += 1;
    // As a browser does: queued, and only in a stable state.
    if (this.signalingState === "stable") queueMicrotask(() => this.fire("negotiationneeded"));
  }
  async setLocalDescription() {
    await null;
    this.offers += 1;
    this.signalingState = "have-local-offer";
    this.localDescription = { type: "offer", sdp: `offer ${this.offers}` };
  }
  async setRemoteDescription() { this.signalingState = "stable"; }
  become(state) { this.connectionState = state; this.fire("connectionstatechange"); }
  close() { this.signalingState = "closed"; }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

// A link that has connected once and had its first offer answered; `me` against "u5" makes
// it the impolite ("u1") or the polite ("u9") side.
async function connectedLink(me) {
  globalThis.RTCPeerConnection = FakeConnection;
  FakeConnection.made = [];
  const { PeerLink } = await import("../../static/call/peer-link.js");
  const told = { probes: 0, failed: 0, sent: [], states: [] };
  const signals = {
    probe: () => { told.probes += 1; },
    reportP2pFailed: () => { told.failed += 1; },
    sendDescription: (to, session, description) => told.sent.push(description.sdp),
    sendCandidate() {},
  };
  const link = new PeerLink({
    me, peer: "u5", session: "s5", iceServers: [], tracks: [], stream: null, signals,
    onTrack() {}, onState: (state) => told.states.push(state),
  });
  const pc = FakeConnection.made[0];
  link.negotiated = true;
  pc.become("connected");
  return { link, pc, told };
}

function withClock(body) {
  return async () => {
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
    try {
      await body();
    } finally {
      mock.timers.reset();
      delete globalThis.RTCPeerConnection;
    }
  };
}

async function later(ms) {
  mock.timers.tick(ms);
  await settle();
}

test("the offering side restarts ICE 2 s into a disconnect, then after 4 and 8 s, and stops once connected",
  withClock(async () => {
    const { link, pc, told } = await connectedLink("u1");
    pc.become("disconnected");
    assert.equal(told.probes, 1, "the socket is asked at once whether it survived");
    assert.deepEqual(told.states, ["connected", "reconnecting"]);
    await later(1999);
    assert.equal(pc.restartIces, 0, "a moment's silence is no reason to restart");
    await later(1);
    assert.equal(pc.restartIces, 1);
    assert.deepEqual(told.sent, ["offer 1"], "the restart's offer goes out");
    // The answer never came (the other side's socket was dead): the next restart offers again.
    await later(4000);
    assert.equal(pc.restartIces, 2);
    assert.deepEqual(told.sent, ["offer 1", "offer 2"]);
    await later(8000);
    assert.equal(pc.restartIces, 3, "the pauses double");
    assert.equal(told.probes, 1, "one question per drop");
    await pc.setRemoteDescription();
    pc.become("connected");
    await later(120_000);
    assert.equal(pc.restartIces, 3);
    assert.equal(told.failed, 0, "a path that came back stays the direct one");
    assert.equal(link.restarts, 0);
    // The next drop starts over with the short grace and asks the socket again.
    pc.become("disconnected");
    await later(2000);
    assert.equal(pc.restartIces, 4);
    assert.equal(told.probes, 2);
    link.close();
    await later(120_000);
    assert.equal(pc.restartIces, 4, "a closed link restarts nothing");
    assert.equal(told.failed, 0, "nor falls back");
  }));

test("a link stuck in `disconnected` falls back to the relay after 15 s of restarts, not before",
  withClock(async () => {
    // As Chromium can: ICE checks on and never says `failed`.
    const { pc, told } = await connectedLink("u1");
    pc.become("disconnected");
    await later(2000);
    await later(4000);
    await later(8000);
    await later(2999);
    assert.equal(pc.restartIces, 3, "restarts at 2, 6 and 14 s");
    assert.equal(told.failed, 0, "restarts still have time");
    await later(1);
    assert.equal(told.failed, 1, "17 s after the drop, 15 s after the first restart");
    assert.equal(told.probes, 2, "the report goes with a question to the socket, which may have died since");
    await later(120_000);
    assert.equal(told.failed, 1, "one report per drop");
  }));

test("the polite side, which does not restart, falls back as late as the offering side",
  withClock(async () => {
    // Its path may be the only one that knows: the other side's Chromium can stay `connected`.
    const { pc, told } = await connectedLink("u9");
    pc.become("disconnected");
    await later(16_999);
    assert.equal(told.failed, 0);
    assert.equal(pc.restartIces, 0, "two restart offers would cross");
    await later(1);
    assert.equal(told.failed, 1);
  }));

test("a path back within the bound stays direct, and the next drop gets the whole bound again",
  withClock(async () => {
    const { pc, told } = await connectedLink("u9");
    pc.become("disconnected");
    await later(16_000);
    pc.become("connected");
    pc.become("disconnected");
    await later(16_999);
    assert.equal(told.failed, 0);
    await later(1);
    assert.equal(told.failed, 1);
  }));

test("the polite side leaves the restart to the other one until ICE fails, then restarts at once",
  withClock(async () => {
    const { pc, told } = await connectedLink("u9");
    pc.become("disconnected");
    assert.equal(told.probes, 1);
    await later(10_000);
    assert.equal(pc.restartIces, 0, "two restart offers would cross");
    pc.become("failed");
    await settle();
    assert.equal(pc.restartIces, 1);
    assert.equal(told.failed, 0);
    assert.deepEqual(told.sent, ["offer 1"]);
  }));

test("ICE failing early restarts at once; restarts that bring nothing back fall back; a path that never connected at once",
  withClock(async () => {
    const { pc, told } = await connectedLink("u1");
    pc.become("disconnected");
    await later(2000);
    pc.become("failed");
    assert.equal(told.failed, 0, "ICE gave up early: restart first");
    assert.equal(pc.restartIces, 2);
    await later(13_000);
    pc.become("failed");
    assert.equal(told.failed, 0, "15 s after the drop the restarts still have 2 s");
    assert.equal(pc.restartIces, 4, "at 2 s twice, at 10 s on schedule, at 15 s on `failed`");
    await later(2000);
    assert.equal(told.failed, 1);

    FakeConnection.made = [];
    const { PeerLink } = await import("../../static/call/peer-link.js");
    const signals = { probe() {}, reportP2pFailed: () => { told.failed += 1; }, sendDescription() {}, sendCandidate() {} };
    new PeerLink({ me: "u1", peer: "u5", session: "s5", iceServers: [], tracks: [], stream: null, signals,
                   onTrack() {}, onState() {} });
    FakeConnection.made[0].become("failed");
    assert.equal(told.failed, 2);
    assert.equal(FakeConnection.made[0].restartIces, 0);
  }));
