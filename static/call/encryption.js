// End-to-end encryption in the page (docs/e2ee.md): the transform worker on every sender
// and receiver, the keys (CallKeys) fed from and to the signalling, and whether the call is
// end-to-end encrypted at all. A browser without encoded transforms may join a call only
// where the practice allows transport encryption; it tells the others, and then nobody
// encrypts frames, and every page says so.

import { CallKeys } from "./call-keys.js";
import { makeIdentity } from "./key-exchange.js";
import { transformFrames } from "./peer-connection.js";

export function encodedTransformsAvailable() {
  return "RTCRtpScriptTransform" in globalThis
    || ("RTCRtpSender" in globalThis && "createEncodedStreams" in RTCRtpSender.prototype);
}

// VP8 first, no other video codec: the clear bytes of the wire format are VP8's.
function preferVp8(transceiver) {
  if (!transceiver || !transceiver.setCodecPreferences || !globalThis.RTCRtpReceiver) return;
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs
    .filter((c) => !/^video\/(h264|h265|vp9|av1)$/i.test(c.mimeType));
  codecs.sort((a, b) => Number(/vp8/i.test(b.mimeType)) - Number(/vp8/i.test(a.mimeType)));
  try { transceiver.setCodecPreferences(codecs); } catch (error) { /* the browser keeps its own order */ }
}

export class Encryption {
  // "e2ee": everyone encrypts; "transport": someone cannot, so nobody does.
  mode = "e2ee";
  #keys = null;
  #worker = null;
  #signals;
  #allowTransport;
  #onChange;
  #onSendingKey;
  #plain = new Set();
  #toldPlain = new Set();
  #endpoints = new Map();
  #report = {};

  // `signals` is the CallProtocol; `onChange()` hears of a new code or mode; `onSendingKey()`
  // that this page seals under a new key (a newcomer can read what it sends from now on).
  constructor({ signals, allowTransport, onChange, onSendingKey = () => {} }) {
    this.#signals = signals;
    this.#allowTransport = allowTransport;
    this.#onChange = onChange;
    this.#onSendingKey = onSendingKey;
  }

  get code() { return this.#keys ? this.#keys.code : null; }
  get capable() { return Boolean(this.#keys); }

  // Before the first connection: the key pairs, the worker and the frame hook.
  async start() {
    if (!encodedTransformsAvailable()) { this.mode = "transport"; return; }
    this.#worker = new Worker(new URL("./e2ee-worker.js", import.meta.url), { type: "module" });
    this.#worker.addEventListener("message", ({ data }) => { if (data.type === "report") this.#report = data.transforms; });
    this.#keys = new CallKeys({
      identity: await makeIdentity(),
      signals: this.#signals,
      post: (message) => this.#worker.postMessage(message),
      onCode: (code, changed) => this.#onChange({ code, changed }),
      onSendingKey: () => this.#onSendingKey(),
    });
    // Chromium lets frames of a receiver made without this flag bypass any transform set
    // later (in the track event), so its connections carry the flag whichever API is used.
    const chromiumStyle = "RTCRtpSender" in globalThis && "createEncodedStreams" in RTCRtpSender.prototype;
    transformFrames({
      sender: (sender, transceiver) => {
        preferVp8(transceiver);
        this.#attach(sender, "send", sender.track.kind, sender.track.id);
      },
      receiver: (receiver, transceiver) => {
        preferVp8(transceiver);
        this.#attach(receiver, "receive", receiver.track.kind, receiver.track.id);
      },
    }, chromiumStyle ? { encodedInsertableStreams: true } : {});
  }

  reset() { if (this.#keys) this.#keys.reset(); }

  // The tile that shows `track` is `peer`'s: its frames must be sealed with `peer`'s keys,
  // so a relay cannot pass one person's frames off as another's.
  expect(track, peer) {
    if (!this.#worker) return;
    for (const [id, endpoint] of this.#endpoints) {
      if (endpoint.side === "receive" && endpoint.track === track.id) this.#worker.postMessage({ type: "expect", id, from: peer });
    }
  }

  async participants(list, me) {
    const present = new Set(list.map((p) => p.id));
    for (const id of this.#plain) if (!present.has(id)) this.#plain.delete(id);
    if (!this.#keys) {
      // Without transforms: each newcomer hears that this page sends and reads plain frames.
      for (const p of list) if (p.id !== me && !this.#told(p)) this.#signals.sendPublicKey(p.id, p.session, null);
      return;
    }
    await this.#keys.participants(list, me);
    this.#setMode();
  }

  async publicKey(message) {
    if (message.keys === null) {
      // Without the practice's permission a page never leaves encryption for someone's sake.
      if (this.#allowTransport) this.#plain.add(message.from);
      this.#setMode();
      return;
    }
    if (this.#keys) await this.#keys.publicKey(message);
  }

  async wrappedKey(message) {
    if (this.#keys) await this.#keys.wrappedKey(message);
  }

  keyAck(message) {
    if (this.#keys) this.#keys.keyAck(message);
  }

  // A chat message as it goes to the server: sealed while the call is end-to-end encrypted.
  async outgoingChat(text) {
    if (this.mode === "transport") return { text };
    const sealed = await this.#keys.sealChat(text);
    return sealed ? { sealed } : null;
  }

  // The text of a chat message from the server; null when this page cannot open it.
  async incomingChat(message) {
    if (typeof message.text === "string") return this.mode === "transport" ? message.text : null;
    return this.#keys ? this.#keys.openChat(message.sealed) : null;
  }

  // What this page muted, as it goes to the server: in clear only in a call with transport
  // encryption only, else sealed like chat; null before the first key (it goes out then).
  async outgoingMute(state) {
    if (this.mode === "transport") return { state };
    const sealed = await this.#keys.sealState(state);
    return sealed ? { sealed } : null;
  }

  // Someone's mute state from the server ({from, audio, video}), or null when it cannot be
  // opened or was sealed by another participant than the one it claims to come from.
  async incomingMute(message) {
    if (typeof message.sealed !== "string") return this.mode === "transport" ? message : null;
    const opened = this.#keys && await this.#keys.openState(message.sealed);
    return opened && opened.from === message.from ? opened : null;
  }

  // For diagnostics and the browser tests: per sender and receiver, its track, the key id
  // of its latest frame and how many frames it sealed or opened, and how many failed.
  async state() {
    if (this.#worker) {
      const reported = new Promise((resolve) => {
        const done = ({ data }) => { if (data.type === "report") { this.#worker.removeEventListener("message", done); resolve(); } };
        this.#worker.addEventListener("message", done);
      });
      this.#worker.postMessage({ type: "report" });
      await Promise.race([reported, new Promise((resolve) => setTimeout(resolve, 1000))]);
    }
    const transforms = [...this.#endpoints].map(([id, e]) => ({ ...e, ...(this.#report[id] || {}) }));
    const api = !this.#worker ? null : "RTCRtpScriptTransform" in globalThis ? "script_transform" : "encoded_streams";
    return {
      mode: this.mode, code: this.code, sendingKeyId: this.#keys && this.#keys.sendingKeyId,
      lastSwitch: this.#keys && this.#keys.lastSwitch, api, transforms,
    };
  }

  #told(participant) {
    const key = `${participant.id}/${participant.session}`;
    if (this.#toldPlain.has(key)) return true;
    this.#toldPlain.add(key);
    return false;
  }

  #setMode() {
    if (!this.#keys) return; // without transforms this page stays at transport encryption
    const mode = this.#plain.size ? "transport" : "e2ee";
    if (mode === this.mode) return;
    this.mode = mode;
    this.#worker.postMessage({ type: "encrypt", on: mode === "e2ee" });
    this.#onChange({ code: this.code, changed: false });
    this.#onSendingKey(); // the mute state now goes out the other way
  }

  #attach(endpoint, side, kind, track) {
    const id = `t${this.#endpoints.size + 1}`;
    this.#endpoints.set(id, { side, kind, track });
    const options = { side, kind, id };
    if ("RTCRtpScriptTransform" in globalThis) {
      endpoint.transform = new RTCRtpScriptTransform(this.#worker, options);
    } else {
      const { readable, writable } = endpoint.createEncodedStreams();
      this.#worker.postMessage({ type: "streams", readable, writable, options }, [readable, writable]);
    }
  }
}
