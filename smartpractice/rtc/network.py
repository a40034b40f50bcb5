"""How browsers reach the relay: the ICE servers of its own connections, the UDP ports
its sockets bind to, and the address it announces when it sits behind 1:1 NAT."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCIceServer


def _no_servers() -> list[RTCIceServer]:
    return []


@dataclass(frozen=True)
class RelayNetwork:
    # Called for each new connection, so that minted TURN credentials are fresh.
    ice_servers: Callable[[], list[RTCIceServer]] = field(default=_no_servers)
    # Every socket of a relay connection binds inside this range; None: any port.
    ports: range | None = None
    # Announced beside the host candidates (1:1 NAT: the machine's public address).
    public_address: str | None = None
