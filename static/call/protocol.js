// The client of the call's signalling protocol (docs/signalling.md): one socket, rejoined
// after a drop, one ordered inbox, one switch over the server's messages. It knows no page:
// its owner listens with on(type, fn) and is handed the socket class, timers and the
// question whether a failed handshake was a refusal.

export const PROTOCOL_VERSION = 1;

// After 1, 2, 4, 8 and then every 10 seconds: soon after a short drop, gently while offline.
const RESTARTING = 1012;
const RESTART_PAUSE = 100;
// The server answers refresh_ice at once; a socket that has not within this long is dead.
export const PROBE_MS = 3000;

export function reconnectPause(attempt) {
  return Math.min(500 * 2 ** attempt, 10000);
}

export class CallProtocol {
  me = null;
  session = null;
  iceServers = [];
  #url;
  #WebSocket;
  #setTimeout;
  #clearTimeout;
  #refused;
  #listeners = new Map();
  #socket = null;
  #inbox = Promise.resolve();
  #attempts = 0;
  #retry = null;
  #iceTimer = null;
  #probe = null;
  #stopped = false;

  constructor(url, { WebSocket = globalThis.WebSocket, setTimeout, clearTimeout, refused } = {}) {
    this.#url = url;
    this.#WebSocket = WebSocket;
    // Browsers refuse timer functions called on anything but the window.
    this.#setTimeout = setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this.#clearTimeout = clearTimeout || ((id) => globalThis.clearTimeout(id));
    this.#refused = refused || (async () => false);
  }

  // Types: the server's messages "welcome", "participants", "description" (offer or answer),
  // "candidate", "relay-answer", "relay-sources" (the publishers and the list's version), "relay-moved" (the call's
// relay is gone: connect to it afresh), "mute", "chat",
  // "public-key", "wrapped-key" and "key-ack" (end-to-end encryption),
  // "ice-servers" (the servers), "error"; the socket's fate "reconnecting", "replaced",
  // "ended", "outdated" (4002), "refused" (a handshake the owner judged refused); "fault"
  // (a listener threw or a frame was unreadable). Listeners run one after the other, and the
  // next message waits for them.
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, []);
    this.#listeners.get(type).push(listener);
    return this;
  }

  async #emit(type, value) {
    for (const listener of this.#listeners.get(type) || []) await listener(value);
  }

  #fault(error) {
    if (this.#listeners.has("fault")) this.#emit("fault", error).catch(console.error);
    else console.error(error);
  }

  join() {
    if (this.#socket) return;
    this.#connect();
  }

  // Gives up the seat at once; nothing reconnects after this.
  leave() {
    if (!this.#stopped) this.#send({ type: "leave" });
    this.stop();
  }

  // Stops reconnecting and the timers without telling the server (the page is going away).
  stop() {
    this.#stopped = true;
    this.#clearTimeout(this.#retry);
    this.#clearTimeout(this.#iceTimer);
    this.#clearTimeout(this.#probe);
  }

  sendMute({ audio, video }) { this.#send({ type: "mute", audio, video }); }
  sendSealedMute(sealed) { this.#send({ type: "sealed_mute", sealed }); }
  sendChat(text) { this.#send({ type: "chat", text }); }
  sendSealedChat(sealed) { this.#send({ type: "sealed_chat", sealed }); }
  sendPublicKey(to, toSession, keys) { this.#send({ type: "e2ee_public", to, to_session: toSession, keys }); }
  sendWrappedKey(to, toSession, keyId, wrapped) { this.#send({ type: "e2ee_key", to, to_session: toSession, key_id: keyId, wrapped }); }
  sendKeyAck(to, toSession, keyId) { this.#send({ type: "e2ee_ack", to, to_session: toSession, key_id: keyId }); }
  sendDescription(to, toSession, { type, sdp }) { this.#send({ type, to, to_session: toSession, sdp }); }
  sendCandidate(to, toSession, candidate) { this.#send({ type: "candidate", to, to_session: toSession, candidate }); }
  sendRelayOffer(purpose, sdp, receiveFrom) { this.#send({ type: "relay_offer", purpose, sdp, receive_from: receiveFrom }); }
  reportP2pFailed() { this.#send({ type: "p2p_failed" }); }

  // The media stopped: the line may have dropped. A router that came back without its NAT
  // mappings leaves this socket dead without a close event, until it sends something (and
  // the server's reset comes back) or TCP gives up minutes later; meanwhile the seat's
  // reconnect grace runs out. So it sends something that the server answers at once (fresh
  // TURN credentials, which an ICE restart then uses too), and a socket that stays silent
  // is given up for a new one.
  probe() {
    const socket = this.#socket;
    if (this.#probe !== null || this.#stopped || !socket || socket.readyState !== (this.#WebSocket.OPEN ?? 1)) return;
    this.#send({ type: "refresh_ice" });
    this.#probe = this.#setTimeout(() => {
      this.#probe = null;
      if (socket !== this.#socket) return;
      // Its close event, should it ever come, is then about a socket no longer in use.
      this.#socket = null;
      socket.close();
      this.#lost(null, true, true).catch((error) => this.#fault(error));
    }, PROBE_MS);
  }

  #send(message) {
    const socket = this.#socket;
    if (socket && socket.readyState === (this.#WebSocket.OPEN ?? 1)) socket.send(JSON.stringify(message));
  }

  #connect() {
    if (this.#stopped) return;
    const socket = this.#socket = new this.#WebSocket(this.#url);
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      if (this.#stopped) socket.close();
      else this.#send({ type: "join", version: PROTOCOL_VERSION });
    });
    // One message at a time, in order: a candidate must not overtake the offer it belongs to.
    socket.addEventListener("message", (event) => {
      // Any message shows the socket alive, even one still queued behind a slow handler.
      if (socket === this.#socket) { this.#clearTimeout(this.#probe); this.#probe = null; }
      this.#inbox = this.#inbox.then(() => this.#handle(JSON.parse(event.data))).catch((error) => this.#fault(error));
    });
    socket.addEventListener("close", (event) => {
      this.#closed(socket, event.code, opened).catch((error) => this.#fault(error));
    });
  }

  async #handle(message) {
    if (this.#stopped) return undefined;
    switch (message.type) {
      case "welcome":
        this.#attempts = 0;
        this.me = message.id;
        this.session = message.session;
        this.#useIceServers(message);
        return this.#emit("welcome", message);
      case "participants": return this.#emit("participants", message);
      case "offer": case "answer": return this.#emit("description", message);
      case "candidate": return this.#emit("candidate", message);
      case "relay_answer": return this.#emit("relay-answer", message);
      case "relay_sources": return this.#emit("relay-sources", message);
      case "relay_moved": return this.#emit("relay-moved", message);
      case "mute": return this.#emit("mute", message);
      case "chat": return this.#emit("chat", message);
      case "e2ee_public": return this.#emit("public-key", message);
      case "e2ee_key": return this.#emit("wrapped-key", message);
      case "e2ee_ack": return this.#emit("key-ack", message);
      case "ice_servers":
        this.#useIceServers(message);
        return this.#emit("ice-servers", this.iceServers);
      case "replaced": this.stop(); return this.#emit("replaced");
      case "ended": this.stop(); return this.#emit("ended");
      case "error": return this.#emit("error", message);
      default: return undefined; // a newer server's news; this client has no use for it
    }
  }

  #useIceServers(message) {
    this.iceServers = message.ice_servers;
    this.#clearTimeout(this.#iceTimer);
    // Fresh TURN credentials well before the old ones run out.
    this.#iceTimer = this.#setTimeout(() => this.#send({ type: "refresh_ice" }), message.ice_ttl_seconds * 800);
  }

  async #closed(socket, code, opened) {
    if (socket !== this.#socket || this.#stopped) return;
    // Reconnecting would take the seat back from the newer socket, or meet an ended call or
    // a newer server: the owner reloads or says so instead.
    const final = { 4000: "replaced", 4001: "ended", 4002: "outdated" }[code];
    if (final) { this.stop(); await this.#emit(final); return; }
    // A socket that closes while a probe waits was found dead by it too.
    await this.#lost(code, opened, this.#probe !== null);
  }

  // `probed`: a probe found the socket dead. It died of the network, not of a busy server:
  // the line is likely back (its reset came through), so it rejoins at once.
  async #lost(code, opened, probed) {
    this.#clearTimeout(this.#probe);
    this.#probe = null;
    await this.#emit("reconnecting").catch((error) => this.#fault(error));
    // Refused before the upgrade (ended, no longer admitted, logged out): the page says why.
    if (!opened && await this.#refused()) { this.stop(); await this.#emit("refused"); return; }
    if (this.#stopped) return;
    // 1012: the server is stopping and another one takes the call; at once, not after a pause.
    const pause = (code === RESTARTING || probed) && opened ? RESTART_PAUSE : reconnectPause(this.#attempts + 1);
    this.#attempts += 1;
    this.#retry = this.#setTimeout(() => this.#connect(), pause);
  }
}
