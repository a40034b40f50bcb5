// Key pairs from fixed private keys (docs/e2ee.md, "Test vectors"), in the shape of
// makeIdentity(), for the tests of the key schedule.

import { toBase64 } from "../../static/call/key-exchange.js";

const hex = (text) => Uint8Array.from(text.match(/../g), (byte) => parseInt(byte, 16));
const b64url = (bytes) => toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export async function identityOf(keys, { x25519 = true } = {}) {
  const subtle = globalThis.crypto.subtle;
  const pairs = {}, published = {};
  const p256 = hex(keys.p256_public);
  pairs.p256 = await subtle.importKey("jwk", {
    kty: "EC", crv: "P-256", d: b64url(hex(keys.p256_private)), x: b64url(p256.subarray(1, 33)), y: b64url(p256.subarray(33)),
  }, { name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  published.p256 = toBase64(p256);
  if (x25519) {
    pairs.x25519 = await subtle.importKey("jwk", {
      kty: "OKP", crv: "X25519", d: b64url(hex(keys.x25519_private)), x: b64url(hex(keys.x25519_public)),
    }, { name: "X25519" }, false, ["deriveBits"]);
    published.x25519 = toBase64(hex(keys.x25519_public));
  }
  return { pairs, published };
}
