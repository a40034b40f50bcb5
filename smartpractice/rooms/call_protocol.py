"""The call's signalling protocol, version 1 (docs/signalling.md, message by message).

One `Connection` per WebSocket: it checks every message against the protocol, answers
what is wrong with an error message, and turns the rest into calls on the `Calls`
service. It knows nothing of aiohttp: the web handler feeds it text and sends what it
returns, so the protocol can be tested and read on its own.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets

from smartpractice.errors import UserError
from smartpractice.i18n import N_
from smartpractice.rooms import protocol
from smartpractice.rooms.call import Calls
from smartpractice.rooms.ice import IceServers
from smartpractice.rooms.protocol import (
    CLOSE_ENDED,
    CLOSE_NORMAL,
    CLOSE_REPLACED,
    JOIN,
    RateLimit,
    Schema,
    Send,
    Translate,
    error_message,
    flag,
    invalid_field,
    participant,
    text,
    text_or_none,
)
from smartpractice.rooms.state import RoomsUnavailable
from smartpractice.rooms.waiting_room import Seat, WaitingRoom

logger = logging.getLogger(__name__)

VERSION = 1
# An SDP offer for the relay with eight participants is about 20 KiB.
MESSAGE_BYTES = 64 * 1024
SDP_CHARS = 48 * 1024
CHAT_CHARS = 500
# A sealed chat message: 500 characters of UTF-8 (up to 2,000 bytes) and 34 bytes of
# tag and trailer, in base64 (docs/e2ee.md).
SEALED_CHAT_CHARS = 2800
# A sealed mute state: {"audio":false,"video":false} and 34 bytes, in base64.
SEALED_MUTE_CHARS = 128
# Public keys and wrapped keys of end-to-end encryption, in bytes (docs/e2ee.md).
PUBLIC_KEY_BYTES = {"p256": 65, "x25519": 32}
WRAPPED_KEY_BYTES = 60
# ICE candidates come in bursts at the start; a steady stream beyond this is abuse.
RATE_PER_SECOND = 20.0
RATE_BURST = 60
# Each relay offer makes a peer connection on the server (a certificate, candidates).
RELAY_OFFERS_PER_SECOND = 1.0
RELAY_OFFER_BURST = 4


def _candidate(value: object) -> bool:
    """A browser's RTCIceCandidateInit, or null for the end of candidates."""
    if value is None:
        return True
    return (isinstance(value, dict) and isinstance(value.get("candidate"), str) and len(value["candidate"]) <= 1024
            and text_or_none(value.get("sdpMid"), 256) and text_or_none(value.get("usernameFragment"), 256)
            and isinstance(value.get("sdpMLineIndex"), (int, type(None))))


def _participants(value: object) -> bool:
    return isinstance(value, list) and len(value) <= 16 and all(participant(item) for item in value)


def _purpose(value: object) -> bool:
    return value in ("publish", "receive")


def _base64(value: object, size: int | None = None, limit: int = 0) -> bool:
    """Standard base64 of exactly `size` bytes, or of at most `limit` characters."""
    if not isinstance(value, str) or not value or len(value) > (limit or 4 * ((size or 0) + 2) // 3 + 4):
        return False
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return size is None or len(decoded) == size


def _public_keys(value: object) -> bool:
    """A participant's public keys, P-256 always; null from a browser without encoded
    transforms (the call then has transport encryption only, if the practice allows it)."""
    if value is None:
        return True
    return (isinstance(value, dict) and "p256" in value and set(value) <= set(PUBLIC_KEY_BYTES)
            and all(_base64(value[name], PUBLIC_KEY_BYTES[name]) for name in value))


def _key_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF


# What a client may send: its type and the fields each type needs.
SCHEMA: Schema = {
    "join": JOIN,
    "offer": {"to": participant, "sdp": text(SDP_CHARS)},
    "answer": {"to": participant, "sdp": text(SDP_CHARS)},
    "candidate": {"to": participant, "candidate": _candidate},
    "relay_offer": {"purpose": _purpose, "sdp": text(SDP_CHARS), "receive_from": _participants},
    "mute": {"audio": flag, "video": flag},
    "sealed_mute": {"sealed": lambda value: _base64(value, limit=SEALED_MUTE_CHARS)},
    "chat": {"text": text(CHAT_CHARS)},
    "sealed_chat": {"sealed": lambda value: _base64(value, limit=SEALED_CHAT_CHARS)},
    "e2ee_public": {"to": participant, "keys": _public_keys},
    "e2ee_key": {"to": participant, "key_id": _key_id, "wrapped": lambda value: _base64(value, WRAPPED_KEY_BYTES)},
    "e2ee_ack": {"to": participant, "key_id": _key_id},
    "p2p_failed": {},
    "refresh_ice": {},
    "leave": {},
}


class Connection(protocol.Connection):
    """One participant's signalling connection to one call."""

    schema, version, rate = SCHEMA, VERSION, (RATE_PER_SECOND, RATE_BURST)

    def __init__(self, *, seat: Seat, name: str, calls: Calls, waiting_room: WaitingRoom, ice: IceServers,
                 send: Send, translate: Translate, client_kind: str) -> None:
        super().__init__(send=send, translate=translate)
        self.seat = seat
        self.name = name
        self.session = secrets.token_urlsafe(9)
        self.left = False
        self._calls = calls
        self._waiting_room = waiting_room
        self._ice = ice
        self._client_kind = client_kind
        self._attendance: int | None = None
        # News of the call that came while the attendance was written would reach the client
        # before its welcome, when it does not know its own id yet; what it misses then is
        # told again once it is in the call (the participants, by the join itself).
        self._welcomed = False
        self._relay_rate = RateLimit(per_second=RELAY_OFFERS_PER_SECOND, burst=RELAY_OFFER_BURST)

    def parse(self, raw: str) -> dict:
        message = super().parse(raw)
        if not text_or_none(message.get("to_session"), 64):
            raise invalid_field()
        return message

    async def deliver(self, message: dict) -> int | None:
        """Something from the call for this client; a close code when it ends the connection.
        Until its welcome, a connection hears nothing of the call but its end."""
        kind = message["type"]
        if not self._welcomed and kind != "ended":
            return None
        if kind == "replaced":
            if message["session"] == self.session:
                return None
            await self._send({"type": "replaced"})
            return CLOSE_REPLACED
        if kind == "ended":
            self.left = True  # nobody comes back to an ended call: the relay lets go at once
            await self._send({"type": "ended"})
            return CLOSE_ENDED
        if "session" in message and message.get("to_session") not in (None, self.session):
            return None
        await self._send(message)
        return None

    async def closed(self) -> None:
        """The socket is gone: a leave if the client said so, else a drop it may come back from."""
        if not self.joined:
            return
        try:
            if self.left:
                await self._calls.leave(self.seat, self.session)
            else:
                await self._calls.dropped(self.seat, self.session)
        except RoomsUnavailable:
            # The seat stays behind until this instance's lease or the call ends.
            logger.warning("room state unreachable: consultation %s keeps a seat of a closed connection",
                           self.seat.consultation.id)
        if self._attendance is not None:
            await self._waiting_room.left_call(self._attendance)

    async def _error(self, error: UserError, about: dict | None = None) -> None:
        reply = error_message(error, self._translate, about)
        if about and about["type"] == "relay_offer":
            reply["purpose"] = about["purpose"]  # which of the two relay connections failed
        await self._send(reply)

    async def _may_join(self) -> None:
        await self._waiting_room.check_open(self.seat, reread=True)  # the seat was read when the socket opened

    async def _joined(self) -> None:
        self._attendance = await self._waiting_room.joined_call(self.seat, self._client_kind)
        await self._send({"type": "welcome", "version": VERSION, "id": self.seat.key, "session": self.session,
                          "ice_servers": self._ice.for_browser(self.seat.key),
                          "ice_ttl_seconds": self._ice.ttl_seconds})
        self._welcomed = True
        await self._calls.join(self.seat, self.name, self.session)
        await self._calls.relay_sources(self.seat)

    async def _relay_to_peer(self, message: dict, **payload: object) -> None:
        if message["to"] == self.seat.key or not await self._calls.is_member(self.seat, message["to"]):
            raise UserError("unknown_peer", N_("That participant is not in the call."))
        await self._calls.send_to(self.seat, message["to"], {
            "type": message["type"], "from": self.seat.key, "session": self.session,
            "to_session": message.get("to_session"), **payload,
        })

    async def _on_offer(self, message: dict) -> None:
        await self._relay_to_peer(message, sdp=message["sdp"])

    async def _on_answer(self, message: dict) -> None:
        await self._relay_to_peer(message, sdp=message["sdp"])

    async def _on_candidate(self, message: dict) -> None:
        # Only what a browser's addIceCandidate reads is passed on, nothing else a client adds.
        found = message["candidate"]
        candidate = None if found is None else {key: found.get(key) for key in
                                                ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")}
        await self._relay_to_peer(message, candidate=candidate)

    async def _on_relay_offer(self, message: dict) -> None:
        if not self._relay_rate.allow():
            raise UserError("rate_limited", N_("Too many messages; please slow down."))
        sdp = await self._calls.relay_attach(self.seat, message["purpose"], message["sdp"], message["receive_from"])
        await self._send({"type": "relay_answer", "purpose": message["purpose"], "sdp": sdp,
                          "receive_from": message["receive_from"]})

    async def _on_mute(self, message: dict) -> None:
        await self._calls.set_media(self.seat, self.session, audio=message["audio"], video=message["video"])

    async def _on_sealed_mute(self, message: dict) -> None:
        await self._calls.sealed_media(self.seat, message["sealed"])

    async def _on_chat(self, message: dict) -> None:
        if not message["text"].strip():
            raise invalid_field()
        await self._calls.chat(self.seat, self.name, text=message["text"].strip())

    async def _on_sealed_chat(self, message: dict) -> None:
        await self._calls.chat(self.seat, self.name, sealed=message["sealed"])

    # End-to-end encryption: passed on to the one participant named, as opaque as it came.
    async def _on_e2ee_public(self, message: dict) -> None:
        await self._relay_to_peer(message, keys=message["keys"])

    async def _on_e2ee_key(self, message: dict) -> None:
        await self._relay_to_peer(message, key_id=message["key_id"], wrapped=message["wrapped"])

    async def _on_e2ee_ack(self, message: dict) -> None:
        await self._relay_to_peer(message, key_id=message["key_id"])

    async def _on_p2p_failed(self, message: dict) -> None:
        await self._calls.peer_to_peer_failed(self.seat)

    async def _on_refresh_ice(self, message: dict) -> None:
        await self._send({"type": "ice_servers", "ice_servers": self._ice.for_browser(self.seat.key),
                          "ice_ttl_seconds": self._ice.ttl_seconds})

    async def _on_leave(self, message: dict) -> int:
        self.left = True
        return CLOSE_NORMAL
