// The end-to-end encrypted frame, version 1 (docs/e2ee.md, "Wire format"): what a sender's
// transform makes of each encoded audio or video frame and what a receiver's takes apart.
// WebCrypto only, no page and no worker API, so that the worker, the page and node's tests
// share one implementation.
//
//   clear bytes | AES-256-GCM ciphertext | tag (16) | IV (12) | key id (4) | clear count (1) | 0xE1
//
// The clear bytes stay readable for the relay (the VP8 frame tag's first byte for its
// keyframe test) and for the receiving browser's depacketizer (a VP8 keyframe's size
// fields); the last seven bytes and the clear bytes are authenticated as associated data.

export const FORMAT = 0xe1;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const TRAILER_BYTES = IV_BYTES + 4 + 1 + 1;
export const KEY_BYTES = 32;

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();

// LiveKit and Jitsi leave the same: a VP8 keyframe's 3-byte frame tag and 7-byte start code
// and size; of a delta frame and of an Opus packet the first byte (frame tag, TOC).
export function clearBytes(kind, frameType) {
  if (kind === "video" && frameType === "key") return 10;
  return 1;
}

// Two keys from one key's material: one for frames, one for chat, so that the same key and
// IV never meet two kinds of message.
export async function frameKeys(material) {
  const base = await subtle().importKey("raw", material, "HKDF", false, ["deriveKey"]);
  const derive = (info) => subtle().deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: encoder.encode(info) },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  return { frame: await derive("smartpractice e2ee v1 frame"), chat: await derive("smartpractice e2ee v1 chat") };
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
  const sealed = new Uint8Array(await subtle().encrypt(
    { name: "AES-GCM", iv, additionalData: associated(bytes.subarray(0, kept), trailer) }, key, bytes.subarray(kept)));
  const frame = new Uint8Array(kept + sealed.length + TRAILER_BYTES);
  frame.set(bytes.subarray(0, kept), 0);
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
  const plain = new Uint8Array(clear + opened.length);
  plain.set(bytes.subarray(0, clear), 0);
  plain.set(opened, clear);
  return plain;
}
