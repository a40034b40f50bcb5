"""The end-to-end encryption's test vectors (tests/js/e2ee-vectors.json, printed in
docs/e2ee.md) checked by a second implementation: Python's `cryptography` instead of the
browser's WebCrypto, so that the vectors are not just what the JavaScript happens to make."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ROOT = Path(__file__).resolve().parents[1]
VECTORS = json.loads((ROOT / "tests" / "js" / "e2ee-vectors.json").read_text())
FORMAT = 0xE2
HIDDEN = b"\xff\xff"  # what a header of three bytes or more carries in its bytes 1 and 2
CURVE_TAGS = {"x25519": 2, "p256": 1}


def hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(32), info=info).derive(secret)


def seal(key: bytes, key_id: int, plain: bytes, clear: int, iv: bytes) -> bytes:
    tail = struct.pack(">IBB", key_id, clear, FORMAT)
    header, secret = plain[:clear], plain[clear:]
    if clear >= 3:
        header, secret = plain[:1] + HIDDEN + plain[3:clear], plain[1:3] + secret
    sealed = AESGCM(key).encrypt(iv, secret, header + tail)
    return header + sealed + iv + tail


def open_sealed(key: bytes, sealed: bytes) -> bytes:
    """The receiver's side, written from docs/e2ee.md rather than from seal()."""
    iv, tail = sealed[-18:-6], sealed[-6:]
    key_id, clear, version = struct.unpack(">IBB", tail)
    assert version == FORMAT
    header = sealed[:clear]
    opened = AESGCM(key).decrypt(iv, sealed[clear:-18], header + tail)
    if clear < 3:
        return header + opened
    assert header[1:3] == HIDDEN
    return header[:1] + opened[:2] + header[3:] + opened[2:]


def test_frames_chat_and_mute_state_are_sealed_as_documented():
    material = bytes.fromhex(VECTORS["material"])
    frame_key = hkdf(material, b"smartpractice e2ee v1 frame")
    chat_key = hkdf(material, b"smartpractice e2ee v1 chat")
    iv = bytes.fromhex(VECTORS["iv"])
    for frame in VECTORS["frames"]:
        sealed = seal(frame_key, VECTORS["key_id"], bytes.fromhex(frame["plain"]), frame["clear"], iv)
        assert sealed.hex() == frame["sealed"], frame["name"]
        assert open_sealed(frame_key, sealed).hex() == frame["plain"], frame["name"]
    chat = seal(chat_key, VECTORS["key_id"], VECTORS["chat"]["text"].encode(), 0, iv)
    assert chat.hex() == VECTORS["chat"]["sealed"]
    state_key = hkdf(material, b"smartpractice e2ee v1 state")
    state = seal(state_key, VECTORS["key_id"], VECTORS["state"]["text"].encode(), 0, iv)
    assert state.hex() == VECTORS["state"]["sealed"]


def _public(keys: dict, curve: str) -> bytes:
    return bytes.fromhex(keys[curve + "_public"])


def _secret(private: dict, public: dict, curve: str) -> bytes:
    if curve == "x25519":
        mine = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(private["x25519_private"]))
        return mine.exchange(x25519.X25519PublicKey.from_public_bytes(_public(public, curve)))
    mine = ec.derive_private_key(int(private["p256_private"], 16), ec.SECP256R1())
    return mine.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _public(public, curve)))


def test_wrapped_keys_open_with_the_pairwise_key_of_both_sides():
    keys = VECTORS["keys"]
    for wrap in VECTORS["wraps"]:
        curve, sender, receiver = wrap["curve"], keys[wrap["from"]], keys[wrap["to"]]
        info = (b"smartpractice e2ee v1 wrap" + bytes([CURVE_TAGS[curve]])
                + _public(sender, curve) + _public(receiver, curve))
        # The receiver's side of the exchange: its private key, the sender's public key.
        key = hkdf(_secret(receiver, sender, curve), info)
        assert key == hkdf(_secret(sender, receiver, curve), info)
        wrapped = bytes.fromhex(wrap["wrapped"])
        assert wrapped[:12].hex() == wrap["iv"]
        opened = AESGCM(key).decrypt(wrapped[:12], wrapped[12:], struct.pack(">I", wrap["key_id"]))
        assert opened.hex() == VECTORS["material"], curve


def _code(sets: list[bytes]) -> str:
    digest = hashlib.sha256(b"smartpractice e2ee v1 code"
                            + b"".join(struct.pack(">H", len(s)) + s for s in sorted(sets))).digest()
    return " ".join(f"{number % 100000:05d}" for number in struct.unpack(">4I", digest[:16]))


def test_verification_code_is_computed_as_documented():
    keys = VECTORS["keys"]
    both = [bytes([2]) + _public(k, "x25519") + bytes([1]) + _public(k, "p256") for k in keys.values()]
    p256 = [bytes([1]) + _public(k, "p256") for k in keys.values()]
    assert _code(both) == VECTORS["code"]["both_curves"]
    assert _code(p256) == VECTORS["code"]["p256_only"]


def test_the_documented_vectors_are_these():
    page = (ROOT / "docs" / "e2ee.md").read_text()
    for frame in VECTORS["frames"]:
        assert frame["sealed"] in page.replace("\n", "").replace(" ", ""), frame["name"]
    for wrap in VECTORS["wraps"]:
        assert wrap["wrapped"] in page.replace("\n", "").replace(" ", ""), wrap["curve"]
    assert VECTORS["code"]["both_curves"] in page
