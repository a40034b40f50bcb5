"""ICE servers for one participant: STUN from configuration, and TURN credentials
minted in coturn's `use-auth-secret` scheme, so coturn can check them without asking us."""

from __future__ import annotations

import base64
import hashlib
import hmac

from aiortc import RTCIceServer

from smartpractice.clock import Clock
from smartpractice.config import Settings

# The name in the TURN credentials of the relay's own connections (coturn logs it).
RELAY_PARTICIPANT = "relay"


class IceServers:
    def __init__(self, *, settings: Settings, clock: Clock) -> None:
        self._stun = list(settings.stun_urls)
        self._turn = list(settings.turn_urls)
        self._secret = settings.turn_secret.encode()
        self.ttl_seconds = settings.turn_ttl_seconds
        self._clock = clock

    def for_browser(self, participant: str) -> list[dict]:
        """RTCIceServer dictionaries as the browser's RTCPeerConnection takes them."""
        servers: list[dict] = []
        if self._stun:
            servers.append({"urls": self._stun})
        if self._turn:
            username, credential = self.turn_credential(participant)
            servers.append({"urls": self._turn, "username": username, "credential": credential})
        return servers

    def turn_credential(self, participant: str) -> tuple[str, str]:
        expires = int(self._clock.now().timestamp()) + self.ttl_seconds
        username = f"{expires}:{participant}"
        digest = hmac.new(self._secret, username.encode(), hashlib.sha1).digest()
        return username, base64.b64encode(digest).decode()

    def for_relay(self) -> list[RTCIceServer]:
        """The configuration of one of the relay's own connections: the same STUN and
        TURN servers as the browsers, with a TURN credential minted now, and always
        explicit, because aiortc given nothing asks a public Google STUN server."""
        servers = [RTCIceServer(urls=url) for url in self._stun]
        if self._turn:
            username, credential = self.turn_credential(RELAY_PARTICIPANT)
            servers.append(RTCIceServer(urls=list(self._turn), username=username, credential=credential))
        return servers
