// How the call page's modules divide the work (static/call/): only the page modules touch
// the page, and every peer connection, sender and receiver is made in peer-connection.js,
// so that an encoded transform (end-to-end encryption) has exactly one place to go.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const DIR = new URL("../../static/call/", import.meta.url);
const PAGE_MODULES = new Set(["page.js", "tiles.js", "device-check.js", "chat.js"]);

function code(name) {
  // Comments may name the page; code may not.
  return readFileSync(new URL(name, DIR), "utf8").replace(/\/\/.*$/gm, "");
}

const modules = readdirSync(DIR).filter((name) => name.endsWith(".js"));

test("the protocol, media and connection modules never touch the page", () => {
  assert.ok(modules.includes("protocol.js") && modules.includes("relay.js"));
  for (const name of modules.filter((m) => !PAGE_MODULES.has(m))) {
    assert.doesNotMatch(code(name), /\b(document|window|location|HTMLElement|HTMLMediaElement)\b/, name);
  }
});

test("peer connections, senders and receivers are made in peer-connection.js only", () => {
  for (const name of modules.filter((m) => m !== "peer-connection.js")) {
    // A connection's addTrack takes the track and its streams; a MediaStream's, the track alone.
    assert.doesNotMatch(code(name), /new RTCPeerConnection|\.addTrack\([^,)]+,|\.addTransceiver\(/, name);
  }
});

test("every sender and every receiver passes the frame hook once", async () => {
  const made = [];
  globalThis.RTCPeerConnection = class {
    #listeners = {};
    constructor(configuration) { this.configuration = configuration; made.push(this); }
    addEventListener(type, listener) { (this.#listeners[type] ||= []).push(listener); }
    fire(type, event) { for (const listener of this.#listeners[type] || []) listener(event); }
    transceivers = [];
    addTrack(track) {
      const sender = { kind: "addTrack", track };
      this.transceivers.push({ sender });
      return sender;
    }
    addTransceiver(trackOrKind, init) {
      const transceiver = { sender: { kind: "transceiver", track: trackOrKind, init }, receiver: { of: trackOrKind } };
      this.transceivers.push(transceiver);
      return transceiver;
    }
    getTransceivers() { return this.transceivers; }
  };
  try {
    const { newPeerConnection, receiveKind, sendTrack, transformFrames } = await import("../../static/call/peer-connection.js");
    const seen = [];
    const transceivers = [];
    transformFrames({
      sender: (sender, transceiver) => { seen.push(["sender", sender]); transceivers.push(transceiver); },
      receiver: (receiver, transceiver) => { seen.push(["receiver", receiver]); transceivers.push(transceiver); },
    }, { encodedInsertableStreams: true });
    const servers = [{ urls: ["stun:x"] }];
    const pc = newPeerConnection(servers);
    assert.deepEqual(made[0].configuration, { iceServers: servers, encodedInsertableStreams: true });
    const direct = sendTrack(pc, "camera", "stream");
    const relayed = sendTrack(pc, "microphone", "stream", "sendonly");
    const transceiver = receiveKind(pc, "video");
    pc.fire("track", { receiver: transceiver.receiver, transceiver });
    pc.fire("track", { receiver: transceiver.receiver, transceiver }); // a second stream on the same receiver
    assert.deepEqual(seen, [["sender", direct], ["sender", relayed], ["receiver", transceiver.receiver]]);
    assert.deepEqual(transceivers.map((t) => t.sender), [direct, relayed, transceiver.sender]);
    assert.deepEqual(relayed.init, { direction: "sendonly", streams: ["stream"] });
  } finally {
    delete globalThis.RTCPeerConnection;
  }
});
