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

// Receivers get the new key over signalling before frames use it.
export const SWITCH_MS = 1000;
// Per sender: the newest keys, so frames still in flight after a switch can be read.
export const KEEP_KEYS = 3;

export class CallKeys {
  sendingKeyId = null;
  code = null;
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
  #chat = null;
  #shown = null;

  // `identity` from makeIdentity(); `signals` sends public and wrapped keys; `post(message)`
  // reaches the transform worker; `onCode(code, changed)` shows the verification code.
  constructor({ identity, signals, post, onCode = () => {}, setTimeout, clearTimeout }) {
    this.#identity = identity;
    this.#signals = signals;
    this.#post = post;
    this.#onCode = onCode;
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
    this.#received.set(keyId, { from, chat: keys.chat });
    this.#post({ type: "receive-key", keyId, from, key: keys.frame });
    while (peer.keys.length > KEEP_KEYS) this.#drop(peer.keys.shift());
    return true;
  }

  // A chat message as only the call's participants can read it; null before the first key.
  async sealChat(text) {
    if (!this.#chat) return null;
    const sealed = await sealFrame(this.#chat.key, this.#chat.keyId, new TextEncoder().encode(text), 0);
    return toBase64(sealed);
  }

  // The text of a sealed chat message; null when this page has no key for it.
  async openChat(sealed) {
    let bytes;
    try { bytes = fromBase64(sealed); } catch (error) { return null; }
    const frame = readFrame(bytes);
    const entry = frame && (this.#received.get(frame.keyId) || (this.#chat && this.#chat.keyId === frame.keyId && this.#chat));
    if (!entry) return null;
    try {
      return new TextDecoder().decode(await openFrame(entry.chat || entry.key, bytes));
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
    for (const [id, peer] of this.#peers) {
      if (!peer.send) continue;
      const wrapped = await wrapMaterial(peer.send, keyId, material);
      this.#signals.sendWrappedKey(id, peer.session, keyId, toBase64(wrapped));
    }
    const use = () => {
      this.sendingKeyId = keyId;
      this.#chat = { keyId, key: keys.chat };
      this.#post({ type: "send-key", keyId, key: keys.frame });
    };
    this.#clearTimeout(this.#switchTimer);
    // Alone, nobody waits for the key; with others, they get it before frames need it.
    if (!this.sendingKeyId || ![...this.#peers.values()].some((p) => p.send)) use();
    else this.#switchTimer = this.#setTimeout(use, SWITCH_MS);
  }

  async #showCode() {
    const peers = [...this.#peers.values()];
    const code = peers.every((p) => p.published)
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
