// The call's media connections in the topology the server chose: one PeerLink peer to peer,
// or the two Relay connections. A change of topology closes everything and starts over; the
// shared screen, being part of what goes out, survives it.

import { PeerLink } from "./peer-link.js";
import { Relay } from "./relay.js";

export class Connections {
  topology = null;
  #signals;
  #media;
  #onTrack;
  #onPeerState;
  #link = null;
  #relay;

  // `signals` is the CallProtocol, `media` the LocalMedia. The page hears of tracks with
  // `onTrack(peer, track)`, of the direct link with `onPeerState(peer, state)` and of the
  // relay connections with `onRelayState(connectionState)`.
  constructor({ signals, media, onTrack, onPeerState, onRelayState }) {
    this.#signals = signals;
    this.#media = media;
    this.#onTrack = onTrack;
    this.#onPeerState = onPeerState;
    this.#relay = new Relay({ signals, media, onTrack, onState: onRelayState });
  }

  // A new socket, a new session: the next participants message says what to build.
  reset() {
    this.close();
    this.#relay.reset();
    this.topology = null;
  }

  participants(message) {
    if (message.topology !== this.topology) {
      this.close();
      this.topology = message.topology;
      if (this.topology === "relay") this.#relay.start();
    }
    const others = message.participants.filter((p) => p.id !== this.#signals.me);
    if (this.topology === "p2p") {
      const other = others[0];
      if (this.#link && !(other && this.#isOf(this.#link, other.id, other.session))) this.#closeLink();
      if (other && !this.#link && other.state === "connected") this.#openLink(other.id, other.session);
      if (this.#link) this.#link.peerAway = other.state !== "connected";
    } else if (this.topology === "relay" && !this.#relay.publisher && this.#media.outgoing().length) {
      this.#relay.publish();
    }
  }

  async description(message) {
    if (this.topology !== "p2p") return;
    if (message.type === "offer" && !this.#isOf(this.#link, message.from, message.session)) {
      this.#closeLink(); // a new session of the other side: start over with it
      this.#openLink(message.from, message.session);
    }
    const link = this.#link;
    if (this.#isOf(link, message.from, message.session)) await link.receiveDescription(message);
  }

  async candidate(message) {
    const link = this.#link;
    if (this.#isOf(link, message.from, message.session) && message.candidate) await link.receiveCandidate(message.candidate);
  }

  relayAnswer(message) { return this.#relay.receiveAnswer(message); }
  relaySources(sources) { this.#relay.receiveSources(sources); }
  // Always handed on: the relay counts its publish replies even when it is closed now.
  retryRelay(purpose) { this.#relay.retry(purpose); }

  // The relay worker that held the call stopped: publish to the one the server picks now;
  // the receiving connection follows the next relay_sources.
  relayMoved() {
    if (this.topology !== "relay") return;
    this.#relay.restart();
    if (this.#media.outgoing().length) this.#relay.publish();
  }

  // Used from the next ICE restart or connection on; a working path needs no new credentials.
  // The rest of the configuration goes along: Chromium refuses a change of any other field
  // (the connections' encoded-streams option) with InvalidModificationError.
  useIceServers(iceServers) {
    for (const pc of this.all()) pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
  }

  all() {
    return [this.#link && this.#link.pc, this.#relay.publisher, this.#relay.receiver].filter(Boolean);
  }

  // A new camera, microphone or shared screen goes into the running connections without
  // renegotiation.
  async replaceTrack(kind, track) {
    const senders = this.all().flatMap((pc) => pc.getSenders());
    for (const sender of senders) if (sender.track && sender.track.kind === kind) await sender.replaceTrack(track);
  }

  // Packets lost and received from `peer` so far, and the round trip in seconds; null
  // without a connection to ask.
  async receivedFrom(peer) {
    const p2p = this.topology === "p2p";
    const pc = p2p ? this.#link && this.#link.pc : this.#relay.receiver;
    if (!pc) return null;
    const mids = p2p ? null : this.#relay.midsOf(peer);
    const report = await pc.getStats();
    let lost = 0, received = 0, rtt = 0;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && (!mids || mids.has(s.mid))) { lost += s.packetsLost || 0; received += s.packetsReceived || 0; }
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime) rtt = s.currentRoundTripTime;
    });
    return { lost, received, rtt };
  }

  close() {
    this.#closeLink();
    this.#relay.close();
  }

  #isOf(link, peer, session) {
    return Boolean(link) && link.peer === peer && link.session === session;
  }

  #openLink(peer, session) {
    this.#link = new PeerLink({
      me: this.#signals.me, peer, session, iceServers: this.#signals.iceServers, signals: this.#signals,
      tracks: this.#media.outgoing(), stream: this.#media.stream,
      onTrack: (track) => this.#onTrack(peer, track),
      onState: (state) => this.#onPeerState(peer, state),
    });
  }

  #closeLink() {
    if (this.#link) this.#link.close();
    this.#link = null;
  }
}
