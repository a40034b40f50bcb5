// Who holds which key in an end-to-end encrypted call (docs/e2ee.md, "Key schedule"). Each
// page sends its public keys to each other participant; once it has someone's public keys it
// moves to a fresh sending key and sends that key, wrapped pairwise, to everyone it can, so a
// newcomer never gets a key used before it came. When someone leaves, the same happens
// without them. Frame keys go to the transform worker through `post`; no page, no worker.

import { frameKeys, sealFrame, openFrame, readFrame } from "./frame-cipher.js";
import {
  fromBase64, newKeyId, newMaterial, toBase64, unwrapMaterial, validPublished, verificationCode,
  wrapMaterial, wrappingKey,
} from "./key-exchange.js";

// A new sending key goes into use once every receiver it was wrapped for has acknowledged
// it (`e2ee_ack`), and at the latest after SWITCH_MS: a receiver that cannot open it (a
// swapped public key) or never answers holds up nobody for longer than that.
export const SWITCH_MS = 1000;
// Per sender: the newest keys, so frames still in flight after a switch can be read.
export const KEEP_KEYS = 3;

export class CallKeys {
  sendingKeyId = null;
  code = null;
  // How the newest sending key went into use: "first" (nobody held the one before), "acks"
  // (everyone acknowledged it), "timer" (SWITCH_MS ran out) or "left" (those it waited for
  // left), and after how many milliseconds; for diagnostics and the browser tests.
  lastSwitch = null;
  #identity;
  #signals;
  #post;
  #onCode;
  #setTimeout;
  #clearTimeout;
  #me = null;
  #peers = new Map();
  #received = new Map();
  #rotation = Promise.resolve();
  #switchTimer = null;
  #pending = null; // a new sending key waiting for acknowledgements: {keyId, waiting, use}
  #current = null; // the sending key's id and its chat and state keys
  #shown = null;
  #shared = false;
  #onSendingKey;

  // `identity` from makeIdentity(); `signals` sends public and wrapped keys; `post(message)`
  // reaches the transform worker; `onCode(code, changed)` shows the verification code;
  // `onSendingKey()` hears that frames (and sealed messages) now go out under a new key.
  constructor({ identity, signals, post, onCode = () => {}, onSendingKey = () => {}, setTimeout, clearTimeout }) {
    this.#identity = identity;
    this.#signals = signals;
    this.#post = post;
    this.#onCode = onCode;
    this.#onSendingKey = onSendingKey;
    // Browsers refuse timer functions called on anything but the window.
    this.#setTimeout = setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this.#clearTimeout = clearTimeout || ((id) => globalThis.clearTimeout(id));
  }

  get published() { return this.#identity.published; }

  // A new socket, a new session of this page: everyone is met again (the key pairs stay).
  reset() {
    for (const id of [...this.#peers.keys()]) this.#forget(id);
  }

  // The participants message: `list` of {id, session}, `me` this page's id.
  async participants(list, me) {
    this.#me = me;
    const present = new Map(list.filter((p) => p.id !== me).map((p) => [p.id, p.session]));
    let left = false;
    for (const [id, peer] of this.#peers) {
      if (present.get(id) !== peer.session) { this.#forget(id); left = true; }
    }
    for (const [id, session] of present) if (!this.#peers.has(id)) this.#meet(id, session);
    if (left || !this.sendingKeyId) await this.#rotate();
    await this.#showCode();
  }

  // Someone's public keys, addressed to this page.
  async publicKey({ from, session, keys }) {
    if (!validPublished(keys)) return;
    if (!this.#peers.has(from) || this.#peers.get(from).session !== session) {
      // Heard of before the participants message that lists them.
      if (this.#peers.has(from)) this.#forget(from);
      this.#meet(from, session);
    }
    const peer = this.#peers.get(from);
    if (peer.published && JSON.stringify(peer.published) === JSON.stringify(keys)) return;
    try {
      peer.send = await wrappingKey(this.#identity, keys, true);
      peer.receive = await wrappingKey(this.#identity, keys, false);
    } catch (error) {
      return; // no curve in common: this participant stays unreadable, and the code says so
    }
    peer.published = keys;
    await this.#rotate();
    await this.#showCode();
  }

  // Someone's sending key, wrapped for this page.
  async wrappedKey({ from, session, key_id: keyId, wrapped }) {
    const peer = this.#peers.get(from);
    if (!peer || peer.session !== session || !peer.receive) return false;
    let material;
    try {
      material = await unwrapMaterial(peer.receive, keyId, fromBase64(wrapped));
    } catch (error) {
      return false; // not for this page's key: a swapped public key, or a stale key
    }
    const keys = await frameKeys(material);
    peer.keys.push(keyId);
    this.#received.set(keyId, { from, chat: keys.chat, state: keys.state });
    this.#post({ type: "receive-key", keyId, from, key: keys.frame });
    while (peer.keys.length > KEEP_KEYS) this.#drop(peer.keys.shift());
    // The worker has the key before the sender hears this (messages to it are in order).
    this.#signals.sendKeyAck(from, session, keyId);
    return true;
  }

  // A participant has unwrapped this page's new sending key `key_id`.
  keyAck({ from, session, key_id: keyId }) {
    const pending = this.#pending, peer = this.#peers.get(from);
    if (!pending || pending.keyId !== keyId || !peer || peer.session !== session) return;
    pending.waiting.delete(from);
    if (!pending.waiting.size) pending.use("acks");
  }

  // A chat message as only the call's participants can read it; null before the first key.
  sealChat(text) { return this.#seal("chat", text); }

  // The text of a sealed chat message; null when this page has no key for it.
  openChat(sealed) { return this.#open("chat", sealed); }

  // What this page mutes ({audio, video}), sealed like chat under a key of its own (a
  // sealed state never opens as chat, nor chat as a state); null before the first key.
  sealState(state) { return this.#seal("state", JSON.stringify({ audio: Boolean(state.audio), video: Boolean(state.video) })); }

  // Someone's sealed mute state: {from, audio, video} with `from` the participant whose key
  // sealed it, or null when this page cannot open it.
  async openState(sealed) {
    const opened = await this.#open("state", sealed, true);
    if (!opened) return null;
    try {
      const { audio, video } = JSON.parse(opened.text);
      return typeof audio === "boolean" && typeof video === "boolean" ? { from: opened.from, audio, video } : null;
    } catch (error) {
      return null;
    }
  }

  async #seal(kind, text) {
    if (!this.#current) return null;
    const sealed = await sealFrame(this.#current[kind], this.#current.keyId, new TextEncoder().encode(text), 0);
    return toBase64(sealed);
  }

  async #open(kind, sealed, withSender = false) {
    let bytes;
    try { bytes = fromBase64(sealed); } catch (error) { return null; }
    const frame = readFrame(bytes);
    const own = this.#current && this.#current.keyId === frame?.keyId ? { ...this.#current, from: this.#me } : null;
    const entry = frame && (this.#received.get(frame.keyId) || own);
    if (!entry) return null;
    try {
      const text = new TextDecoder().decode(await openFrame(entry[kind], bytes));
      return withSender ? { text, from: entry.from } : text;
    } catch (error) {
      return null;
    }
  }

  #meet(id, session) {
    this.#peers.set(id, { session, published: null, send: null, receive: null, keys: [] });
    this.#signals.sendPublicKey(id, session, this.#identity.published);
  }

  #forget(id) {
    for (const keyId of this.#peers.get(id).keys) this.#drop(keyId);
    this.#peers.delete(id);
    // Nobody waits for the acknowledgement of someone gone.
    if (this.#pending && this.#pending.waiting.delete(id) && !this.#pending.waiting.size) this.#pending.use("left");
  }

  #drop(keyId) {
    this.#received.delete(keyId);
    this.#post({ type: "drop-key", keyId });
  }

  // One rotation at a time, in order: each sends a fresh key to everyone known then.
  #rotate() {
    this.#rotation = this.#rotation.then(() => this.#newSendingKey());
    return this.#rotation;
  }

  async #newSendingKey() {
    const keyId = newKeyId(), material = newMaterial();
    const keys = await frameKeys(material);
    const wrapped = [];
    for (const [id, peer] of this.#peers) {
      if (peer.send) wrapped.push([id, peer.session, toBase64(await wrapMaterial(peer.send, keyId, material))]);
    }
    const waiting = new Set(wrapped.map(([id]) => id));
    const shared = waiting.size > 0;
    const sentAt = Date.now();
    const pending = {
      keyId,
      waiting,
      use: (by) => {
        // Once only, and never after a newer key took its place.
        if (this.#pending !== pending) return;
        this.#pending = null;
        this.#clearTimeout(this.#switchTimer);
        this.lastSwitch = { by, ms: Date.now() - sentAt };
        this.sendingKeyId = keyId;
        this.#shared = shared;
        this.#current = { keyId, chat: keys.chat, state: keys.state };
        this.#post({ type: "send-key", keyId, key: keys.frame });
        this.#onSendingKey();
      },
    };
    this.#clearTimeout(this.#switchTimer);
    // Waiting before anything is sent: no acknowledgement can come for a key not yet pending.
    this.#pending = pending;
    for (const [id, session, key] of wrapped) this.#signals.sendWrappedKey(id, session, keyId, key);
    // Those who hold the key in use keep reading it until the new one has reached them, and
    // no longer: a newcomer cannot read the key in use (it was made before it came), so
    // every moment under it is a moment of black tiles there. Waiting for the receivers'
    // acknowledgements instead of a fixed time switches as soon as everyone can read the new
    // key (a signalling round trip, not the second a timer had to allow for a slow one); the
    // switch's keyframe (e2ee-worker.js) then lets the newcomer decode at once. A key nobody
    // else holds (this page's first, made before anyone's public keys came) has no reader to
    // wait for: frames under it are lost on everyone, so the new key goes in at once.
    if (!this.sendingKeyId || !this.#shared || !shared) pending.use("first");
    else this.#switchTimer = this.#setTimeout(() => pending.use("timer"), SWITCH_MS);
  }

  async #showCode() {
    const peers = [...this.#peers.values()];
    // Alone there is nobody to compare with: no code, so the first one shown when someone
    // comes is not announced as a change.
    const code = peers.length && peers.every((p) => p.published)
      ? await verificationCode([this.#identity.published, ...peers.map((p) => p.published)])
      : null;
    if (code === this.code) return;
    // While a newcomer's keys are on the way there is no code; the next one is still news.
    const changed = Boolean(this.#shown) && Boolean(code) && code !== this.#shown;
    this.code = code;
    if (code) this.#shown = code;
    this.#onCode(code, changed);
  }
}
