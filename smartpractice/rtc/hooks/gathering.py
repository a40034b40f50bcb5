"""Where the relay's ICE candidates live: UDP ports inside a configured range, and an
advertised public address for a machine behind 1:1 NAT (docs/relay.md, Ports and
addresses).

aioice 0.13 binds every socket of a connection to port 0 (any port the kernel picks) and
has no parameter for a range; aiortc builds the aioice ``Connection`` itself. So the
relay wraps one aioice method per connection, ``Connection.get_component_candidates``:
while it runs, a context variable holds the range, and the event loop's
``create_datagram_endpoint`` (replaced once per loop, on the loop instance) binds the
sockets aioice asks for to a free port of the range instead of port 0: the host
candidates (``local_addr=(address, 0)``; their server-reflexive candidates share those
sockets) and the local side of a TURN allocation over UDP (``remote_addr`` only). The
tasks aioice starts inside inherit the variable; every other caller of the loop, the
relay's peers in tests among them, never sees it.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import ipaddress
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aioice
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCIceTransport

_RANGE: contextvars.ContextVar[range | None] = contextvars.ContextVar("relay_ports", default=None)
# Marks a loop's create_datagram_endpoint as already replaced.
_MARK = "_smartpractice_relay_ports"


class NoFreePort(RuntimeError):
    """Every port of the relay's range is taken. Not an OSError on purpose: aioice skips
    an address it cannot bind (OSError) without a word, and the connection would go on
    without candidates instead of being refused."""

    def __init__(self, ports: range) -> None:
        super().__init__(f"no free UDP port in {ports.start}-{ports.stop - 1}")
        self.ports = ports


def gather_within(transport: RTCIceTransport, *, ports: range | None,
                  public_address: str | None) -> None:
    """Make the aioice connection of `transport` bind its sockets inside `ports` (None: anywhere) and announce
    `public_address` beside each host candidate of the same IP version, as the
    server-reflexive candidate a STUN server would report through a 1:1 NAT. Call
    before gathering (between setRemoteDescription and setLocalDescription)."""
    if ports is None and public_address is None:
        return
    connection: aioice.Connection = transport._connection
    if ports is not None:
        _bind_in_range_on(asyncio.get_running_loop())
    gather: Callable[..., Awaitable[list[aioice.Candidate]]] = connection.get_component_candidates

    async def get_component_candidates(*args: Any, **kwargs: Any) -> list[aioice.Candidate]:
        token = _RANGE.set(ports)
        try:
            candidates = await gather(*args, **kwargs)
        finally:
            _RANGE.reset(token)
        if public_address is not None:
            candidates += _advertised(candidates, public_address)
        return candidates

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def _advertised(candidates: list[aioice.Candidate], public_address: str) -> list[aioice.Candidate]:
    version = ipaddress.ip_address(public_address).version
    return [
        aioice.Candidate(
            foundation=candidate_foundation("srflx", "udp", host.host), component=host.component,
            transport=host.transport, priority=candidate_priority(host.component, "srflx"),
            host=public_address, port=host.port, type="srflx",
            related_address=host.host, related_port=host.port)
        for host in candidates
        if host.type == "host" and host.host != public_address
        and ipaddress.ip_address(host.host).version == version
    ]


def _bind_in_range_on(loop: asyncio.AbstractEventLoop) -> None:
    create = loop.create_datagram_endpoint
    if getattr(create, _MARK, False):
        return

    async def create_datagram_endpoint(protocol_factory: Any, local_addr: Any = None,
                                       remote_addr: Any = None, **kwargs: Any) -> Any:
        ports = _RANGE.get()
        if ports is None or (local_addr is not None and local_addr[1] != 0) or kwargs.get("sock"):
            return await create(protocol_factory, local_addr=local_addr, remote_addr=remote_addr, **kwargs)
        host = local_addr[0] if local_addr is not None else _wildcard_for(remote_addr)
        # From a random place in the range, so that connections made at once rarely
        # try the same ports one after the other.
        start = random.randrange(len(ports))
        for port in (ports[(start + i) % len(ports)] for i in range(len(ports))):
            try:
                return await create(protocol_factory, local_addr=(host, port), remote_addr=remote_addr, **kwargs)
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
        raise NoFreePort(ports)

    setattr(create_datagram_endpoint, _MARK, True)
    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign]


def _wildcard_for(remote_addr: tuple[str, int]) -> str:
    """The any-address of the TURN server's IP version (a name counts as IPv4)."""
    try:
        return "::" if ipaddress.ip_address(remote_addr[0]).version == 6 else "0.0.0.0"  # noqa: S104
    except ValueError:
        return "0.0.0.0"  # noqa: S104
