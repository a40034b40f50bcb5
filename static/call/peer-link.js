// The direct connection to the one other person in a peer-to-peer call, with "perfect
// negotiation": when offers cross, the polite peer (the greater id) yields.

import { newPeerConnection, receiveKind, sendTrack } from "./peer-connection.js";
import { withoutUnlistedCodecs } from "./sdp.js";

// Chromium reports a direct path as failed only after about 30 s; a call should not wait that long.
export const P2P_CONNECT_MS = 15000;

export class PeerLink {
  makingOffer = false;
  ignoreOffer = false;
  negotiated = false;
  connected = false;
  restarted = false;
  #signals;

  // `signals` is the CallProtocol; `onTrack(track)` and `onState("connected" | "reconnecting")`
  // tell the page.
  constructor({ me, peer, session, iceServers, tracks, stream, signals, onTrack, onState }) {
    this.peer = peer;
    this.session = session;
    this.polite = me > peer;
    this.#signals = signals;
    const pc = this.pc = newPeerConnection(iceServers);
    tracks.forEach((track) => sendTrack(pc, track, stream));
    if (!this.polite) {
      // The impolite peer makes the first offer, so it must offer to receive what it does not send.
      for (const kind of ["audio", "video"]) {
        if (!tracks.some((track) => track.kind === kind)) receiveKind(pc, kind);
      }
    }
    pc.addEventListener("negotiationneeded", () => this.#offer());
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) signals.sendCandidate(peer, session, event.candidate.toJSON());
    });
    pc.addEventListener("track", (event) => onTrack(event.track));
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") {
        this.connected = true;
        this.restarted = false;
        onState("connected");
      } else if (pc.connectionState === "disconnected") {
        onState("reconnecting");
      } else if (pc.connectionState === "failed") {
        // One ICE restart for a path that worked (a new network); then the relay.
        if (this.connected && !this.restarted) {
          this.restarted = true;
          pc.restartIce();
        } else {
          signals.reportP2pFailed();
        }
      }
    });
    this.timer = setTimeout(() => { if (!this.connected) signals.reportP2pFailed(); }, P2P_CONNECT_MS);
  }

  async #offer() {
    // The first offer comes from the impolite peer only: crossing first offers make
    // Chromium roll back a fresh transport, which then sometimes never gathers.
    if (this.polite && !this.negotiated) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.#signals.sendDescription(this.peer, this.session, this.pc.localDescription);
    } finally {
      this.makingOffer = false;
    }
  }

  // An offer or answer from this link's peer and session.
  async receiveDescription(message) {
    const pc = this.pc;
    const collision = message.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    await pc.setRemoteDescription({ type: message.type, sdp: withoutUnlistedCodecs(message.sdp) });
    this.negotiated = true;
    if (message.type === "offer") {
      await pc.setLocalDescription();
      this.#signals.sendDescription(this.peer, this.session, pc.localDescription);
    }
  }

  async receiveCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (error) {
      // Candidates of an offer this side ignored cannot be added; that is expected.
      if (!this.ignoreOffer) throw error;
    }
  }

  close() {
    clearTimeout(this.timer);
    this.pc.close();
  }
}
