// The call page's relay connections (static/call/relay.js) when the call moves to another
// relay worker while a publish offer is out: the reply to that offer, which the server
// sends first (it answers a socket in order), must not land on the fresh connection.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

class FakeConnection {
  static made = [];
  #listeners = {};
  signalingState = "stable";
  iceGatheringState = "complete";
  localDescription = null;
  remote = null;
  constructor() { this.sdp = `offer-${FakeConnection.made.length + 1}`; FakeConnection.made.push(this); }
  addEventListener(type, listener) { (this.#listeners[type] ||= []).push(listener); }
  addTransceiver(track) { return { sender: { track }, receiver: {} }; }
  async createOffer() { return { type: "offer", sdp: this.sdp }; }
  async setLocalDescription(description) { this.localDescription = description; this.signalingState = "have-local-offer"; }
  async setRemoteDescription(description) { this.remote = description.sdp; this.signalingState = "stable"; }
  close() { this.signalingState = "closed"; }
}

async function relayWithFakes() {
  globalThis.RTCPeerConnection = FakeConnection;
  FakeConnection.made = [];
  const { Relay } = await import("../../static/call/relay.js");
  const sent = [];
  const signals = { me: "u1", iceServers: [], sendRelayOffer: (purpose, sdp) => sent.push({ purpose, sdp }) };
  const media = { stream: "stream", outgoing: () => ["microphone", "camera"] };
  const relay = new Relay({ signals, media, onTrack() {}, onState() {} });
  relay.start();
  return { relay, sent };
}

async function settled() {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 0));
}

// A publish offer out when relay_moved comes, and the next publish: [the old connection, the new one].
async function movedWithAnOfferOut(relay) {
  relay.publish();
  await settled();
  const [first] = FakeConnection.made;
  relay.restart(); // relay_moved
  relay.publish();
  await settled();
  return [first, relay.publisher];
}

afterEach(() => { delete globalThis.RTCPeerConnection; });

test("after relay_moved, the answer to the old publish offer is let go and the new one is used", async () => {
  const { relay, sent } = await relayWithFakes();
  const [first, second] = await movedWithAnOfferOut(relay);
  assert.notEqual(second, first);
  assert.deepEqual(sent.map((offer) => offer.sdp), ["offer-1", "offer-2"]);
  // The old offer's reply comes first: an answer from the old worker...
  await relay.receiveAnswer({ type: "relay_answer", purpose: "publish", sdp: "answer-to-offer-1" });
  assert.equal(second.remote, null);
  assert.equal(second.signalingState, "have-local-offer");
  // ...then the new one's.
  await relay.receiveAnswer({ type: "relay_answer", purpose: "publish", sdp: "answer-to-offer-2" });
  assert.equal(second.remote, "answer-to-offer-2");
  assert.equal(relay.publisher, second);
});

test("after relay_moved, the error relay_moved about the old publish offer leaves the new connection alone", async () => {
  const { relay, sent } = await relayWithFakes();
  const [, second] = await movedWithAnOfferOut(relay);
  relay.retry("publish"); // the error about offer-1
  assert.equal(relay.publisher, second);
  assert.equal(second.signalingState, "have-local-offer");
  await relay.receiveAnswer({ type: "relay_answer", purpose: "publish", sdp: "answer-to-offer-2" });
  assert.equal(second.remote, "answer-to-offer-2");
  assert.equal(sent.length, 2);
  relay.close();
});

test("an error about the only publish offer out replaces the connection, and a new socket starts the count afresh", async () => {
  const { relay, sent } = await relayWithFakes();
  relay.publish();
  await settled();
  relay.retry("publish"); // e.g. relay_failed: the connection is closed, a new one follows
  assert.equal(relay.publisher, null);
  relay.publish();
  await settled();
  relay.reset(); // the socket was replaced: the offer's reply never comes
  relay.start();
  relay.publish();
  await settled();
  const current = relay.publisher;
  await relay.receiveAnswer({ type: "relay_answer", purpose: "publish", sdp: "answer-to-offer-3" });
  assert.equal(current.remote, "answer-to-offer-3");
  assert.equal(sent.length, 3);
  relay.close();
});

// Each publish attach announces the list of publishers as it read it, and with several at
// once (a call turning to the relay) one read earlier can come after one read later.
test("a list of publishers read before the one in use is let go, until the call moves to another relay", async () => {
  const { relay, sent } = await relayWithFakes();
  const a = { id: "u2", kinds: ["audio", "video"], generation: 2 };
  const b = { id: "u3", kinds: ["audio", "video"], generation: 3 };
  relay.receiveSources({ publishers: [a, b], version: 20 });
  await settled();
  assert.deepEqual(sent.map((offer) => offer.purpose), ["receive"]);
  const receiver = relay.receiver;
  await relay.receiveAnswer({ type: "relay_answer", purpose: "receive", receive_from: ["u2", "u3"], sdp: "answer" });
  // The list u3's attach read before u2's was there, arriving last.
  relay.receiveSources({ publishers: [b], version: 10 });
  await settled();
  assert.equal(relay.receiver, receiver);
  assert.equal(sent.length, 1);
  // After relay_moved the next worker's lists count, whatever their version.
  relay.restart();
  relay.receiveSources({ publishers: [b], version: 5 });
  await settled();
  assert.notEqual(relay.receiver, receiver);
  assert.equal(sent.length, 2);
  relay.close();
});
