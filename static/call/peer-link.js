// The direct connection to the one other person in a peer-to-peer call, with "perfect
// negotiation": when offers cross, the polite peer (the greater id) yields.

import { newPeerConnection, receiveKind, sendTrack } from "./peer-connection.js";
import { withoutUnlistedCodecs } from "./sdp.js";

// Chromium reports a direct path as failed only after about 30 s; a call should not wait that long.
export const P2P_CONNECT_MS = 15000;
// A path that stops answering is `disconnected` within seconds, but `failed` only after
// ICE's consent to send has run out (RFC 7675; about 20 s in Firefox, never in some cases of
// Chromium): a line that drops and comes back must not wait for that. After this grace the
// offering side restarts ICE, and again after pauses that double up to the longest.
export const RESTART_GRACE_MS = 2000;
export const RESTART_LONGEST_MS = 16000;
// Restarts that brought nothing back for as long as a first connection may take fall back to
// the relay, whether or not ICE ever says `failed`: the grace and then that long after the
// drop, on both sides. The polite one restarts only on `failed`, and its path may be the only
// one that knows it is down (a Chromium on the other side can stay `connected`).
export const P2P_RECOVER_MS = RESTART_GRACE_MS + P2P_CONNECT_MS;

export class PeerLink {
  makingOffer = false;
  ignoreOffer = false;
  negotiated = false;
  connected = false;
  restarts = 0;
  #signals;
  #restartTimer = null;
  #fallbackTimer = null;
  #pause = RESTART_GRACE_MS;
  #downSince = null;

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
      const state = pc.connectionState;
      if (state === "connected") {
        this.connected = true;
        this.#up();
        onState("connected");
      } else if (state === "disconnected" || state === "failed") {
        if (state === "disconnected") onState("reconnecting");
        if (!this.connected) {
          if (state === "failed") signals.reportP2pFailed();
        } else {
          this.#down(state);
        }
      }
    });
    this.timer = setTimeout(() => { if (!this.connected) signals.reportP2pFailed(); }, P2P_CONNECT_MS);
  }

  // A path that worked went down. The socket is asked whether it survived (a line that
  // dropped may have taken it along); the impolite peer restarts ICE after the grace, and both
  // when ICE gives up. Restarts that brought nothing back for as long as a first connection
  // may take fall back to the relay, as a path that no longer works (a new network without
  // UDP) would; ICE's `failed` is not waited for, as it may never come.
  #down(state) {
    if (this.#downSince === null) {
      this.#downSince = Date.now();
      this.#signals.probe();
      this.#fallbackTimer = setTimeout(() => this.#fallBack(), P2P_RECOVER_MS);
    }
    if (state !== "failed") {
      if (!this.polite) this.#restartLater();
      return;
    }
    clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    this.#restart();
    this.#restartLater();
  }

  // The server moves both sides to the relay on one report. A socket that died since the
  // drop's probe would lose it: asked again, a dead one is replaced, and the new session
  // starts both sides over.
  #fallBack() {
    this.#fallbackTimer = null;
    if (this.#downSince === null || this.pc.signalingState === "closed") return;
    this.#signals.probe();
    this.#signals.reportP2pFailed();
  }

  #restartLater() {
    if (this.#restartTimer !== null) return;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#downSince === null || this.pc.signalingState === "closed") return;
      this.#restart();
      this.#restartLater();
    }, this.#pause);
    this.#pause = Math.min(this.#pause * 2, RESTART_LONGEST_MS);
  }

  #restart() {
    this.restarts += 1;
    this.pc.restartIce();
    // negotiationneeded waits for a stable state; an earlier restart's offer that got no
    // answer (it went out on a dead socket) is made and sent again.
    if (this.pc.signalingState === "have-local-offer") this.#offer().catch(console.error);
  }

  #up() {
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#fallbackTimer);
    this.#restartTimer = this.#fallbackTimer = null;
    this.#pause = RESTART_GRACE_MS;
    this.#downSince = null;
    this.restarts = 0;
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
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#fallbackTimer);
    this.pc.close();
  }
}
