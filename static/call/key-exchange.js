// The key schedule of end-to-end encryption (docs/e2ee.md, "Key schedule"): each page's
// ECDH key pairs for the call, the pairwise wrapping of a sender's key material for each
// receiver, and the verification code over everybody's public keys. WebCrypto only, no
// page, so node's tests run it against the documented vectors.

import { IV_BYTES, KEY_BYTES, randomIv } from "./frame-cipher.js";

const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();

// X25519 where WebCrypto has it; P-256 always, so that any two browsers find a curve in common.
export const CURVES = [
  { name: "x25519", algorithm: { name: "X25519" }, tag: 2, bytes: 32 },
  { name: "p256", algorithm: { name: "ECDH", namedCurve: "P-256" }, tag: 1, bytes: 65 },
];
export const WRAPPED_BYTES = IV_BYTES + KEY_BYTES + 16;
export const CODE_GROUPS = 4;

export function toBase64(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// This page's key pairs for one call, and the public keys as they travel: {curve: base64}.
export async function makeIdentity() {
  const pairs = {};
  const published = {};
  for (const curve of CURVES) {
    let pair;
    try {
      pair = await subtle().generateKey(curve.algorithm, false, ["deriveBits"]);
    } catch (error) {
      continue; // a browser without X25519
    }
    pairs[curve.name] = pair.privateKey;
    published[curve.name] = toBase64(await subtle().exportKey("raw", pair.publicKey));
  }
  return { pairs, published };
}

// A published key set's shape: known curves only, each of its size, P-256 always present.
export function validPublished(published) {
  if (!published || typeof published !== "object" || !published.p256) return false;
  return Object.entries(published).every(([name, value]) => {
    const curve = CURVES.find((c) => c.name === name);
    try {
      return Boolean(curve) && fromBase64(value).length === curve.bytes;
    } catch (error) {
      return false;
    }
  });
}

// The key that wraps what one side sends the other: ECDH on the first curve both publish,
// then HKDF with both public keys (the sender's first) as info, so each direction has its
// own key. `mine` is this page's identity, `theirs` the other side's published keys.
export async function wrappingKey(mine, theirs, sending) {
  const curve = CURVES.find((c) => mine.pairs[c.name] && mine.published[c.name] && theirs[c.name]);
  if (!curve) throw new Error("no curve in common");
  const other = await subtle().importKey("raw", fromBase64(theirs[curve.name]), curve.algorithm, false, []);
  const secret = await subtle().deriveBits({ name: curve.algorithm.name, public: other }, mine.pairs[curve.name], 256);
  const base = await subtle().importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  const own = fromBase64(mine.published[curve.name]), their = fromBase64(theirs[curve.name]);
  const [from, to] = sending ? [own, their] : [their, own];
  const info = new Uint8Array([...encoder.encode("smartpractice e2ee v1 wrap"), curve.tag, ...from, ...to]);
  return subtle().deriveKey({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function keyIdBytes(keyId) {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, keyId >>> 0);
  return bytes;
}

// IV (12) | AES-GCM(material) with the key id as associated data (48): 60 bytes.
export async function wrapMaterial(key, keyId, material, iv = randomIv()) {
  const sealed = new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv, additionalData: keyIdBytes(keyId) }, key, material));
  return new Uint8Array([...iv, ...sealed]);
}

export async function unwrapMaterial(key, keyId, wrapped) {
  if (wrapped.length !== WRAPPED_BYTES) throw new Error("wrapped key of the wrong size");
  const iv = wrapped.subarray(0, IV_BYTES);
  return new Uint8Array(await subtle().decrypt({ name: "AES-GCM", iv, additionalData: keyIdBytes(keyId) }, key, wrapped.subarray(IV_BYTES)));
}

export function newMaterial() {
  return globalThis.crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

// A key id nobody else in the call is likely to use: receivers find the key by it alone.
export function newKeyId() {
  return new DataView(globalThis.crypto.getRandomValues(new Uint8Array(4)).buffer).getUint32(0);
}

// One participant's public keys as bytes: per curve (in CURVES order) its tag and its key.
function encodePublished(published) {
  return CURVES.filter((c) => published[c.name]).flatMap((c) => [c.tag, ...fromBase64(published[c.name])]);
}

// The code every page shows: SHA-256 over all participants' public keys (each set encoded,
// the sets in byte order, so the order of joining does not matter), the first 16 bytes read
// as four 32-bit numbers, each shown as five digits.
export async function verificationCode(publishedSets) {
  const encoded = publishedSets.map(encodePublished).map((bytes) => Uint8Array.from(bytes));
  encoded.sort((a, b) => {
    for (let i = 0; i < Math.min(a.length, b.length); i += 1) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  });
  const input = [...encoder.encode("smartpractice e2ee v1 code")];
  for (const set of encoded) input.push(set.length >> 8, set.length & 0xff, ...set);
  const digest = new DataView(await subtle().digest("SHA-256", Uint8Array.from(input)));
  const groups = [];
  for (let i = 0; i < CODE_GROUPS; i += 1) groups.push(String(digest.getUint32(4 * i) % 100000).padStart(5, "0"));
  return groups.join(" ");
}
