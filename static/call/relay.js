// The two connections to the server's relay (docs/signalling.md, "Joining the relay"): one
// publishes this browser's tracks once; the other receives the others and is made afresh
// whenever the set of publishers changes, because aiortc cannot renegotiate.

import { newPeerConnection, receiveKind, sendTrack } from "./peer-connection.js";

// The relay takes no trickled candidates, and host candidates come at once.
const GATHER_MS = 3000;
const RETRY_MS = 2000;
// aiortc cannot restart ICE, so a connection that stays `disconnected` is replaced; a new
// publish connection makes everyone receive anew, so the grace is longer than a direct
// link's (peer-link.js), and ICE's own `failed` (about 20 s in Firefox) is not waited for.
export const RELAY_GRACE_MS = 4000;

export class Relay {
  publisher = null;
  receiver = null;
  #signals;
  #media;
  #onTrack;
  #onState;
  #active = false;
  #timers = new Set();
  #lastSources = [];
  // The version of the newest list of publishers taken: the server announces each list as it
  // read it, and one read earlier may come after one read later (docs/signalling.md,
  // relay_sources). Taking it would leave out, for good, whoever published in between.
  #version = 0;
  #receiveKey = "";
  #receiveFrom = "";
  #pending = false;
  // Publish offers sent on this socket and not yet answered. The server answers a socket's
  // messages in order, so only the reply that brings this to 0 is for the current
  // connection: an older one (its offer out when relay_moved came) is let go.
  #publishing = 0;
  #next = null;
  #layout = [];

  // `signals` is the CallProtocol, `media` the LocalMedia; `onTrack(peer, track)` and
  // `onState(connectionState)` tell the page.
  constructor({ signals, media, onTrack, onState }) {
    this.#signals = signals;
    this.#media = media;
    this.#onTrack = onTrack;
    this.#onState = onState;
  }

  start() {
    this.#active = true;
  }

  publish() {
    if (this.publisher) this.publisher.close();
    // aiortc cannot restart ICE: a broken connection is replaced by a new one.
    const pc = this.publisher = this.#connection(() => { if (this.publisher === pc) this.publish(); });
    this.#media.outgoing().forEach((track) => sendTrack(pc, track, this.#media.stream, "sendonly"));
    this.#offer(pc, "publish", []).catch(console.error);
  }

  // `sources`: a relay_sources message, {publishers, version}.
  receiveSources({ publishers, version }) {
    if (version < this.#version) return;
    this.#version = version;
    this.#lastSources = publishers;
    this.#consider(publishers);
  }

  #consider(publishers) {
    if (!this.#active) return;
    // One receiving offer at a time: an answer must meet the connection that asked.
    if (this.#pending) { this.#next = publishers; return; }
    const others = publishers.filter((p) => p.id !== this.#signals.me);
    const key = JSON.stringify(others);
    if (key === this.#receiveKey) return;
    this.#receiveKey = key;
    if (this.receiver) this.receiver.close();
    this.receiver = null;
    if (!others.length) return;
    const pc = this.receiver = this.#connection(() => {
      if (this.receiver === pc) { this.#receiveKey = ""; this.#consider(publishers); }
    });
    // The relay fills the m-lines in the order of receive_from, each publisher's kinds in order.
    const layout = this.#layout = others.flatMap((publisher) => publisher.kinds.map(
      (kind) => ({ transceiver: receiveKind(pc, kind), peer: publisher.id })));
    pc.addEventListener("track", (event) => {
      const entry = layout.find((e) => e.transceiver === event.transceiver);
      if (entry) this.#onTrack(entry.peer, event.track);
    });
    const ids = others.map((p) => p.id);
    this.#pending = true;
    this.#receiveFrom = JSON.stringify(ids);
    this.#offer(pc, "receive", ids).catch(console.error);
  }

  async receiveAnswer(message) {
    const publish = message.purpose === "publish";
    const pc = publish ? this.publisher : this.receiver;
    try {
      // An answer meets only the connection whose offer it answers.
      const current = publish ? this.#publishReplied() : this.#receiveFrom === JSON.stringify(message.receive_from);
      if (pc && current && pc.signalingState === "have-local-offer") {
        await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      }
    } finally {
      if (!publish) this.#receiveDone();
    }
  }

  // The relay could not use an offer: try again in a moment with a fresh connection.
  retry(purpose) {
    if (purpose === "publish" && !this.#publishReplied()) return; // about an offer already replaced
    if (!this.#active) return;
    if (purpose === "publish") {
      if (this.publisher) this.publisher.close();
      this.publisher = null;
      this.#later(() => { if (!this.publisher) this.publish(); });
    } else {
      this.#receiveKey = "";
      this.#receiveDone();
      this.#later(() => this.#consider(this.#lastSources));
    }
  }

  // Both connections went to a relay that is gone. The receiving one is made again when the
  // publishers, publishing anew, are announced (their generations grow); an offer still out
  // gets its answer or error as usual, and that ends its turn.
  restart() {
    for (const pc of [this.publisher, this.receiver]) if (pc) pc.close();
    this.publisher = this.receiver = null;
    this.#receiveKey = "";
    this.#lastSources = [];
    // The next worker's lists are the ones that count now.
    this.#version = 0;
    this.#next = null;
    this.#layout = [];
  }

  // The mids on the receiving connection that carry `peer`'s tracks.
  midsOf(peer) {
    return new Set(this.#layout.filter((e) => e.peer === peer).map((e) => e.transceiver.mid));
  }

  close() {
    this.#active = false;
    this.#timers.forEach((id) => clearTimeout(id));
    this.#timers.clear();
    for (const pc of [this.publisher, this.receiver]) if (pc) pc.close();
    this.publisher = this.receiver = null;
    this.#receiveKey = "";
    this.#lastSources = [];
    this.#version = 0;
    this.#pending = false;
    this.#next = null;
    this.#layout = [];
  }

  // A new socket: replies to offers sent on the old one never come.
  reset() {
    this.close();
    this.#publishing = 0;
  }

  #publishReplied() {
    this.#publishing = Math.max(0, this.#publishing - 1);
    return this.#publishing === 0;
  }

  #receiveDone() {
    this.#pending = false;
    const next = this.#next;
    this.#next = null;
    if (next) this.#consider(next);
  }

  #later(retry) {
    const id = setTimeout(() => { this.#timers.delete(id); if (this.#active) retry(); }, RETRY_MS);
    this.#timers.add(id);
  }

  #connection(onFailed) {
    const pc = newPeerConnection(this.#signals.iceServers);
    let grace = null;
    pc.addEventListener("connectionstatechange", () => {
      clearTimeout(grace);
      this.#timers.delete(grace);
      if (pc.connectionState === "failed") { onFailed(); return; }
      if (pc.connectionState === "disconnected") {
        // The line may have dropped and taken the socket along (protocol.js).
        this.#signals.probe();
        grace = setTimeout(() => { this.#timers.delete(grace); if (pc.connectionState === "disconnected") onFailed(); },
          RELAY_GRACE_MS);
        this.#timers.add(grace);
      }
      this.#onState(pc.connectionState);
    });
    return pc;
  }

  async #offer(pc, purpose, receiveFrom) {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, GATHER_MS);
    });
    // Replaced or hung up while gathering: an attach for it would only be let go again.
    if (pc.signalingState === "closed") return;
    this.#signals.sendRelayOffer(purpose, pc.localDescription.sdp, receiveFrom);
    if (purpose === "publish") this.#publishing += 1;
  }
}
