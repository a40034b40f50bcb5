// The end-to-end encrypted frame, version 2 (docs/e2ee.md, "Wire format"): what a sender's
// transform makes of each encoded audio or video frame and what a receiver's takes apart.
// WebCrypto only, no page and no worker API, so that the worker, the page and node's tests
// share one implementation.
//
//   header (C) | AES-256-GCM ciphertext | tag (16) | IV (12) | key id (4) | C (1) | 0xE2
//
// The header is the frame's first C bytes, readable for the relay (the VP8 frame tag's first
// byte for its keyframe test) and for the receiving browser's depacketizer (a VP8 keyframe's
// size fields); the header and the last six bytes are authenticated as associated data.
//
// Version 2 hides a header's bytes 1 and 2 (C >= 3: VP8). They hold most of the frame tag's
// 19-bit first-partition size, which nothing on the way reads (the relay and libwebrtc's
// depacketizer read the P bit of byte 0 and a keyframe's bytes 6-9) but a decoder does: in
// version 1 they stayed clear in a keyframe, and in a delta frame came from ciphertext that
// now and then gave a size inside the frame, so libvpx on the server bool-decoded ciphertext
// into a noise picture. Here they are 0xFF 0xFF on the wire, a size of at least 524,280
// bytes, more than any frame, so libvpx refuses every frame before it reads a partition
// ("Truncated packet or corrupt partition 0 length"); their own values lead the plaintext
// and the receiver puts them back.
//
// Receivers accept version 2 only. A page loaded before version 2 cannot open its frames
// either, so accepting version 1 would at best give a call that works one way; such a page
// shows its tiles as not decrypting, as for any key it lacks, until it is reloaded.

export const FORMAT = 0xe2;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const TRAILER_BYTES = IV_BYTES + 4 + 1 + 1;
export const KEY_BYTES = 32;

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();

// A VP8 keyframe's 3-byte frame tag and 7-byte start code and size (as LiveKit and Jitsi
// leave them); a delta frame's frame tag; an Opus packet's first byte (TOC). Of the frame
// tags, bytes 1 and 2 are hidden (HIDDEN).
export function clearBytes(kind, frameType) {
  if (kind === "video") return frameType === "key" ? 10 : 3;
  return 1;
}

// What a header of at least three bytes carries in its bytes 1 and 2 instead of their own.
export const HIDDEN = Uint8Array.of(0xff, 0xff);
const hides = (clear) => clear >= 1 + HIDDEN.length;

// Three keys from one key's material: for frames, chat and mute state, so that the same key
// and IV never meet two kinds of message.
export async function frameKeys(material) {
  const base = await subtle().importKey("raw", material, "HKDF", false, ["deriveKey"]);
  const derive = (info) => subtle().deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: encoder.encode(info) },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  return {
    frame: await derive("smartpractice e2ee v1 frame"),
    chat: await derive("smartpractice e2ee v1 chat"),
    state: await derive("smartpractice e2ee v1 state"),
  };
}

export function randomIv() {
  return globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
}

function trailerOf(iv, keyId, clear) {
  const trailer = new Uint8Array(TRAILER_BYTES);
  trailer.set(iv, 0);
  new DataView(trailer.buffer).setUint32(IV_BYTES, keyId >>> 0);
  trailer[IV_BYTES + 4] = clear;
  trailer[IV_BYTES + 5] = FORMAT;
  return trailer;
}

function associated(clearPart, trailer) {
  const aad = new Uint8Array(clearPart.length + 6);
  aad.set(clearPart, 0);
  aad.set(trailer.subarray(IV_BYTES), clearPart.length);
  return aad;
}

// `data` encrypted under `key` (a frame key) with `keyId` written beside it.
export async function sealFrame(key, keyId, data, clear, iv = randomIv()) {
  const bytes = new Uint8Array(data);
  const kept = Math.min(clear, bytes.length, 255);
  const trailer = trailerOf(iv, keyId, kept);
  const header = bytes.slice(0, kept);
  let secret = bytes.subarray(kept);
  if (hides(kept)) {
    header.set(HIDDEN, 1);
    secret = new Uint8Array(HIDDEN.length + bytes.length - kept);
    secret.set(bytes.subarray(1, 1 + HIDDEN.length), 0);
    secret.set(bytes.subarray(kept), HIDDEN.length);
  }
  const sealed = new Uint8Array(await subtle().encrypt(
    { name: "AES-GCM", iv, additionalData: associated(header, trailer) }, key, secret));
  const frame = new Uint8Array(kept + sealed.length + TRAILER_BYTES);
  frame.set(header, 0);
  frame.set(sealed, kept);
  frame.set(trailer, kept + sealed.length);
  return frame;
}

// The key id and the parts of a frame in this format; null for anything else.
export function readFrame(data) {
  const bytes = new Uint8Array(data);
  if (bytes.length < TRAILER_BYTES + TAG_BYTES) return null;
  const trailer = bytes.subarray(bytes.length - TRAILER_BYTES);
  const clear = trailer[IV_BYTES + 4];
  if (trailer[IV_BYTES + 5] !== FORMAT || clear > bytes.length - TRAILER_BYTES - TAG_BYTES) return null;
  const keyId = new DataView(trailer.buffer, trailer.byteOffset).getUint32(IV_BYTES);
  return { keyId, clear, trailer, bytes };
}

// The frame as it was before sealFrame; throws when it is not one, or not sealed with `key`.
export async function openFrame(key, data) {
  const frame = readFrame(data);
  if (!frame) throw new Error("not an encrypted frame");
  const { clear, trailer, bytes } = frame;
  const opened = new Uint8Array(await subtle().decrypt(
    { name: "AES-GCM", iv: trailer.subarray(0, IV_BYTES), additionalData: associated(bytes.subarray(0, clear), trailer) },
    key, bytes.subarray(clear, bytes.length - TRAILER_BYTES)));
  if (!hides(clear)) {
    const plain = new Uint8Array(clear + opened.length);
    plain.set(bytes.subarray(0, clear), 0);
    plain.set(opened, clear);
    return plain;
  }
  if (opened.length < HIDDEN.length) throw new Error("the hidden header bytes are missing");
  const plain = new Uint8Array(clear + opened.length - HIDDEN.length);
  plain.set(bytes.subarray(0, clear), 0);
  plain.set(opened.subarray(0, HIDDEN.length), 1);
  plain.set(opened.subarray(HIDDEN.length), clear);
  return plain;
}
