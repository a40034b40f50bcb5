"""The guard of the hooks: everything hooks/__init__.py reads, replaces or relies on in
aiortc and aioice, checked on objects built for real, so that a changed version fails
loudly when a Relay is made rather than quietly in a call."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import NamedTuple

import aioice
import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter, State
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpReceiveParameters,
)
from aiortc.rtp import HeaderExtensionsMap

from . import srtp

# Must equal the pin in pyproject.toml: the hooks below were written against it.
AIORTC_VERSION = "1.16.0"


class HookMismatch(RuntimeError):
    """The installed aiortc or aioice no longer has what the relay's hooks use."""


# The guard. Each entry is what this module reads or replaces on one kind of
# object, with what the value must be; the objects are built for real (a video
# transceiver of a fresh peer connection), since most of these are instance
# attributes that only exist once __init__ has run.

class _Expect(NamedTuple):
    description: str
    holds: Callable[[object], bool]


_METHOD = _Expect("a method", callable)
_PRESENT = _Expect("an attribute", lambda value: True)
_INT = _Expect("an int", lambda value: isinstance(value, int))
_NONE_YET = _Expect("None until it is set up", lambda value: value is None)

_EXPECTED: dict[str, dict[str, _Expect]] = {
    "RTCRtpTransceiver": {
        "_offerDirection": _Expect("None or a direction",
                                   lambda value: value is None or isinstance(value, str)),
    },
    "RTCRtpReceiver": {
        "receive": _METHOD, "stop": _METHOD,
        "_handle_rtp_packet": _METHOD, "_handle_rtcp_packet": _METHOD,
        "_RTCRtpReceiver__decoder_thread": _NONE_YET,
    },
    "RTCRtpSender": {
        "send": _METHOD, "_handle_rtcp_packet": _METHOD, "_send_rtcp": _METHOD,
        "_ssrc": _INT, "_rtx_ssrc": _INT,
    },
    "RTCDtlsTransport": {
        "_register_rtp_receiver": _METHOD, "_unregister_rtp_receiver": _METHOD,
        "_rtp_router": _Expect("an RtpRouter", lambda value: isinstance(value, RtpRouter)),
        "_rtp_header_extensions_map": _Expect(
            "a HeaderExtensionsMap", lambda value: isinstance(value, HeaderExtensionsMap)),
        "_rx_srtp": _NONE_YET, "_tx_srtp": _NONE_YET,
        "_state": _Expect("a State", lambda value: isinstance(value, State)),
    },
    "RTCIceTransport": {
        "_connection": _Expect("an aioice Connection",
                               lambda value: isinstance(value, aioice.Connection)),
    },
    "RtpRouter": {"route_rtp": _METHOD},
    "Connection": {
        "data_received": _METHOD,
        # gathering.py wraps it; what aioice binds inside it, tests/test_relay_ports.py checks.
        "get_component_candidates": _METHOD,
        "_queue": _Expect("a queue", lambda value: callable(getattr(value, "put_nowait", None))),
        "_nominated": _Expect("a dict", lambda value: isinstance(value, dict)),
        "_protocols": _Expect("a list", lambda value: isinstance(value, list)),
    },
    "StunProtocol": {"datagram_received": _METHOD},
}


def check_hooks() -> None:
    """Raise HookMismatch naming everything the hooks use that is missing or changed."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise HookMismatch(f"relay hooks were written for aiortc {AIORTC_VERSION}, "
                           f"found {aiortc.__version__}")
    problems = hook_problems()
    if problems:
        raise HookMismatch(
            f"relay hooks were written for aiortc {AIORTC_VERSION} (installed: aiortc "
            f"{aiortc.__version__}, aioice {aioice.__version__}): " + "; ".join(problems))


@functools.cache
def hook_problems() -> tuple[str, ...]:
    """What check_hooks() complains about, found once per process (a few
    milliseconds: one peer connection and one transceiver, never connected)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # aiortc and aioice bind futures to the current loop as they are built;
        # without a running loop, use a private one rather than creating and
        # installing the thread's default loop as a side effect.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(_problems_of_a_fresh_transceiver())
        finally:
            loop.close()
    return tuple(find_problems(_fresh_transceiver()))


async def _problems_of_a_fresh_transceiver() -> tuple[str, ...]:
    return tuple(find_problems(_fresh_transceiver()))


def _fresh_transceiver() -> RTCRtpTransceiver:
    # No ICE servers, and nothing is gathered or connected: no I/O.
    return RTCPeerConnection(RTCConfiguration(iceServers=[])).addTransceiver("video")


def find_problems(transceiver: RTCRtpTransceiver) -> list[str]:
    """Everything this module uses, checked on a transceiver as aiortc builds it
    (its sender, receiver, DTLS and ICE transports, aioice connection), and the
    two behaviours RtpInput relies on: aiortc's router finds a receiver from an
    SSRC and payload type alone, and aioice hands every datagram that is not
    STUN to its connection's ``data_received``, which queues it for aiortc."""
    problems: list[str] = []

    def check(label: str, target: object) -> None:
        for name, expect in _EXPECTED[label].items():
            try:
                value = getattr(target, name)
            except AttributeError:
                problems.append(f"{label}.{name} is missing")
                continue
            if not expect.holds(value):
                problems.append(f"{label}.{name} is no longer {expect.description}")

    problems += srtp.problems()
    check("RTCRtpTransceiver", transceiver)
    check("RTCRtpReceiver", transceiver.receiver)
    check("RTCRtpSender", transceiver.sender)
    transport = transceiver.receiver.transport
    check("RTCDtlsTransport", transport)
    check("RTCIceTransport", transport.transport)
    router = getattr(transport, "_rtp_router", None)
    if isinstance(router, RtpRouter):
        check("RtpRouter", router)
    connection = getattr(transport.transport, "_connection", None)
    if isinstance(connection, aioice.Connection):
        check("Connection", connection)
        check("StunProtocol", aioice.ice.StunProtocol(connection))
    if problems:
        return problems  # the behaviours below would only fail on the same names
    behaviours = (
        ("routing by SSRC and payload type (RTCDtlsTransport._register_rtp_receiver, "
         "RtpRouter.route_rtp)", _routing_problems, (transceiver.receiver, transport)),
        ("aioice's delivery of datagrams that are not STUN (StunProtocol."
         "datagram_received, Connection.data_received)", _delivery_problems, (connection,)),
    )
    for description, behaviour, arguments in behaviours:
        try:
            problems += behaviour(*arguments)
        except Exception as error:  # noqa: BLE001 - reported, whatever it is
            problems.append(f"{description} raised {error!r}")
    return problems


def _routing_problems(receiver: RTCRtpReceiver, transport: RTCDtlsTransport) -> list[str]:
    ssrc, payload_type = 0x5EC0_0001, 96
    parameters = RTCRtpReceiveParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000,
                                      payloadType=payload_type)],
        encodings=[RTCRtpDecodingParameters(ssrc=ssrc, payloadType=payload_type)])
    transport._register_rtp_receiver(receiver, parameters)
    # The stand-in RtpInput routes with; checking that it suffices is the point here.
    found = transport._rtp_router.route_rtp(
        RoutedPacket(ssrc, payload_type))  # type: ignore[arg-type]
    transport._unregister_rtp_receiver(receiver)
    gone = transport._rtp_router.route_rtp(
        RoutedPacket(ssrc, payload_type))  # type: ignore[arg-type]
    if found is not receiver or gone is not None:
        return ["RtpRouter.route_rtp no longer finds the receiver registered through "
                "RTCDtlsTransport._register_rtp_receiver"]
    return []


def _delivery_problems(connection: aioice.Connection) -> list[str]:
    problems = []
    protocol = aioice.ice.StunProtocol(connection)
    protocol.local_candidate = aioice.Candidate(  # as aioice sets it after creating one
        foundation="0", component=1, transport="udp", priority=1, host="127.0.0.1",
        port=9, type="host")
    dtls = bytes([22, 0xFE, 0xFD]) + bytes(10)  # not STUN: must reach data_received
    delivered: list[object] = []
    # Deliberate, as RtpInput does it, for this probe only (deleted below).
    connection.data_received = (  # type: ignore[method-assign]
        lambda data, component: delivered.append((data, component)))
    try:
        protocol.datagram_received(dtls, ("127.0.0.1", 9))
    except Exception as error:  # noqa: BLE001 - reported below
        delivered.append(error)
    finally:
        del connection.data_received
    if delivered != [(dtls, 1)]:
        problems.append("aioice StunProtocol.datagram_received no longer hands datagrams "
                        f"that are not STUN to Connection.data_received (got {delivered!r})")
    connection.data_received(dtls, 1)
    queued = connection._queue.get_nowait() if not connection._queue.empty() else None
    if queued != (dtls, 1):
        problems.append("aioice Connection.data_received no longer puts datagrams on "
                        "Connection._queue, which aiortc's DTLS transport reads")
    # RtpOutput sends on the nominated pair's protocol's transport, to its remote address.
    sentinel = object()
    protocol.connection_made(sentinel)  # type: ignore[arg-type]
    pair = aioice.ice.CandidatePair(protocol, protocol.local_candidate)
    if (getattr(getattr(pair, "protocol", None), "transport", None) is not sentinel
            or getattr(pair, "remote_addr", None) != ("127.0.0.1", 9)):
        problems.append("aioice CandidatePair.protocol.transport or .remote_addr is "
                        "no longer the socket and address of the pair")
    return problems


class RoutedPacket:
    """What aiortc's RtpRouter reads of a packet."""

    __slots__ = ("payload_type", "ssrc")

    def __init__(self, ssrc: int, payload_type: int) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type


