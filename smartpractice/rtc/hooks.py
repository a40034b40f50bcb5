"""The private aiortc entry points the relay depends on, in one place.

aiortc offers no public packet-level API, so the relay replaces a few private
methods on individual receiver and sender instances and reads a few private
attributes. Every access to aiortc's (and aioice's) internals in the relay goes
through this module, and ``check_hooks()`` (called when a Relay is made, and by
tests/test_relay.py) fails loudly when the installed version no longer has them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import aioice
import aiortc
import pylibsrtp
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter, State
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import AnyRtcpPacket, HeaderExtensionsMap, RtcpSrPacket, RtpPacket

logger = logging.getLogger(__name__)

# Must equal the pin in pyproject.toml: the hooks below were written against it.
AIORTC_VERSION = "1.16.0"

RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]
# Takes one decrypted RTP packet as bytes; runs inside the socket's read callback.
RawRtpHandler = Callable[[bytes], None]


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
    found = transport._rtp_router.route_rtp(_Routed(ssrc, payload_type))
    transport._unregister_rtp_receiver(receiver)
    gone = transport._rtp_router.route_rtp(_Routed(ssrc, payload_type))
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
    delivered = []
    connection.data_received = lambda data, component: delivered.append((data, component))
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


def take_over_receiver_raw(receiver: RTCRtpReceiver, on_rtp: RawRtpHandler,
                           on_rtcp: RtcpHandler,
                           on_parameters: Callable[[RTCRtpReceiveParameters], None]) -> None:
    """Route a receiver's packets to the relay; its decoder thread is never started.

    RTP arrives as decrypted bytes, straight from the socket callback (see
    RtpInput): aiortc never parses it into an RtpPacket. RTCP still takes aiortc's
    path (parsed, routed to the receiver's ``_handle_rtcp_packet``); it is a few
    packets a second. Must run before the peer connection calls ``receive()``,
    i.e. between setRemoteDescription and setLocalDescription.
    """
    state: dict[str, RtpInput | None] = {"input": None}

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        if state["input"] is None:
            # Read now, not earlier: bundling replaces the transport during
            # setRemoteDescription.
            transport = receiver.transport
            on_parameters(parameters)
            # aiortc's router stays the authority on which SSRC belongs to whom,
            # also for the sender reports it routes to this receiver.
            transport._register_rtp_receiver(receiver, parameters)
            state["input"] = RtpInput.of(transport)
            state["input"].add(receiver, on_rtp)

    async def stop() -> None:
        if state["input"] is not None:
            state["input"].remove(receiver)
            receiver.transport._unregister_rtp_receiver(receiver)

    async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        # Only reached if a packet took aiortc's own path after all.
        on_rtp(packet.serialize(receiver.transport._rtp_header_extensions_map))

    receiver.receive = receive  # type: ignore[method-assign]
    receiver.stop = stop  # type: ignore[method-assign]
    receiver._handle_rtp_packet = handle_rtp  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]


class _Routed:
    """What aiortc's RtpRouter reads of a packet."""

    __slots__ = ("payload_type", "ssrc")

    def __init__(self, ssrc: int, payload_type: int) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type


class RtpInput:
    """SRTP packets of one DTLS transport, decrypted and dispatched where the
    datagram arrives.

    aiortc queues every datagram for the DTLS transport's reader task, which
    decrypts, parses into an RtpPacket and awaits a chain of coroutines; per
    forwarded packet that was most of the relay's CPU. Here aioice's
    ``data_received`` is replaced on the one ICE connection: RTP is decrypted and
    handed to its receiver's handler synchronously, while DTLS and RTCP go to the
    queue as before. Installed once per transport; receivers add themselves.
    """

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._router = transport._rtp_router
        self._handlers: dict[object, RawRtpHandler] = {}
        self._by_ssrc: dict[int, RawRtpHandler] = {}
        self.failed = 0  # packets a handler raised on
        connection = transport.transport._connection
        self._queue_put = connection._queue.put_nowait
        connection.data_received = self._data_received
        # aioice tries to parse every datagram as STUN before passing it on;
        # by its first byte (RFC 7983) RTP and RTCP never are. ICE has finished
        # gathering when receivers start, so these are all the sockets there are.
        for protocol in connection._protocols:
            protocol.datagram_received = self._demultiplexer(protocol)

    @classmethod
    def of(cls, transport: RTCDtlsTransport) -> RtpInput:
        installed = getattr(transport.transport._connection.data_received, "__self__", None)
        if isinstance(installed, cls) and installed._transport is transport:
            return installed
        return cls(transport)

    def add(self, receiver: RTCRtpReceiver, handler: RawRtpHandler) -> None:
        self._handlers[receiver] = handler
        self._by_ssrc.clear()

    def remove(self, receiver: RTCRtpReceiver) -> None:
        self._handlers.pop(receiver, None)
        self._by_ssrc.clear()

    def _demultiplexer(self, protocol) -> Callable[[bytes, tuple], None]:  # noqa: ANN001
        stun = protocol.datagram_received
        component = protocol.local_candidate.component
        media = self._data_received

        def datagram_received(data: bytes, addr: tuple) -> None:
            if data and 127 < data[0] < 192:
                media(data, component)
            else:
                stun(data, addr)
        return datagram_received

    def _data_received(self, data: bytes, component: int) -> None:
        # RFC 7983: 128-191 is RTP or RTCP; RTCP packet types are 192-208 (as is_rtcp).
        srtp = self._transport._rx_srtp
        if (srtp is None or len(data) < 12 or not 127 < data[0] < 192
                or 191 < data[1] < 209):
            self._queue_put((data, component))
            return
        try:
            data = srtp.unprotect(data)
        except pylibsrtp.Error:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        handler = self._by_ssrc.get(ssrc)
        if handler is None:
            receiver = self._router.route_rtp(_Routed(ssrc, data[1] & 0x7F))
            handler = self._handlers.get(receiver)
            if handler is None:
                return
            self._by_ssrc[ssrc] = handler
        try:
            handler(data)
        except Exception:
            # One bad packet must not take the socket's reader down with it, nor
            # a stream of them flood the log: the first is logged, the rest counted.
            if not self.failed:
                logger.exception("relay: dropping an RTP packet that could not be "
                                 "forwarded (further failures are only counted)")
            self.failed += 1


class RtpOutput:
    """Sends RTP and RTCP on a DTLS transport synchronously: SRTP protection and
    the datagram written to the nominated ICE pair's socket, as
    ``RTCDtlsTransport._send_rtp`` does, without its three coroutine layers."""

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._nominated = transport.transport._connection._nominated
        self._pair = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None
        self._address: tuple[str, int] | None = None

    def send_rtp(self, data: bytes) -> None:
        transport = self._transport
        if transport._state is not State.CONNECTED:
            return  # not yet, or going away: aiortc would raise ConnectionError
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if not self._use(pair):
                return
        self._sendto(transport._tx_srtp.protect(data), self._address)

    def send_rtcp(self, data: bytes) -> None:
        transport = self._transport
        if transport._state is not State.CONNECTED:
            return
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if not self._use(pair):
                return
        self._sendto(transport._tx_srtp.protect_rtcp(data), self._address)

    def _use(self, pair) -> bool:  # noqa: ANN001
        socket = getattr(pair, "protocol", None)
        socket = getattr(socket, "transport", None)
        if socket is None:
            return False
        self._pair, self._sendto, self._address = pair, socket.sendto, pair.remote_addr
        return True


def is_taken_over(receiver: RTCRtpReceiver) -> bool:
    return "_handle_rtp_packet" in vars(receiver)


def decoder_started(receiver: RTCRtpReceiver) -> bool:
    return receiver._RTCRtpReceiver__decoder_thread is not None  # type: ignore[attr-defined]


def take_over_sender(sender: RTCRtpSender, on_rtcp: RtcpHandler,
                     rewrite_sr: Callable[[RtcpSrPacket], bool]) -> None:
    """Feedback from a subscriber goes to the relay; sender reports carry its clock.

    The stock sender keeps its RTCP loop (SR, SDES, BYE at the usual interval)
    but would report zero packets and a timestamp of 0, which breaks the
    subscriber's lip sync; ``rewrite_sr`` fills in the forwarded stream's values
    and returns False to leave the report out.
    """
    stock_handle = sender._handle_rtcp_packet
    stock_send = sender._send_rtcp

    async def handle_rtcp(packet: AnyRtcpPacket) -> None:
        await on_rtcp(packet)
        await stock_handle(packet)  # keeps RTT and remote-inbound stats

    async def send_rtcp(packets: list[AnyRtcpPacket]) -> None:
        kept = [p for p in packets if not isinstance(p, RtcpSrPacket) or rewrite_sr(p)]
        if kept:
            await stock_send(kept)

    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]
    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


def capture_send_parameters(sender: RTCRtpSender,
                            on_parameters: Callable[[RTCRtpSendParameters], None]) -> None:
    """Learn the negotiated payload types, mid and RTX of a sender when it starts."""
    stock_send = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        on_parameters(parameters)
        await stock_send(parameters)

    sender.send = send  # type: ignore[method-assign]


def offered_direction(transceiver: RTCRtpTransceiver) -> str | None:
    """The direction the remote offer allows from our side ('recvonly': we only
    receive). aiortc keeps it privately until the answer is made."""
    return transceiver._offerDirection


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The SSRCs a sender announces in the SDP it is part of: (media, RTX). aiortc
    draws them when the sender is made and also signs its receiver's RTCP with
    the media one."""
    return sender._ssrc, sender._rtx_ssrc


def header_extensions(transport: RTCDtlsTransport) -> HeaderExtensionsMap:
    """The header extension IDs negotiated on a transport, for aiortc's own
    RtpPacket parser and serializer."""
    return transport._rtp_header_extensions_map
