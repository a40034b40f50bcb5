"""The private aiortc entry points the relay depends on, in one place.

aiortc offers no public packet-level API, so the relay replaces a few private
methods on individual receiver and sender instances and reads a few private
attributes. Every access to aiortc's (and aioice's) internals in the relay goes
through this package, and ``check_hooks()`` (guard.py; called when a Relay is made,
and by tests/test_relay.py) fails loudly when the installed version no longer has them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket, HeaderExtensionsMap, RtcpSrPacket, RtpPacket

from .guard import AIORTC_VERSION as AIORTC_VERSION
from .guard import HookMismatch as HookMismatch
from .guard import RoutedPacket
from .guard import check_hooks as check_hooks
from .guard import find_problems as find_problems
from .guard import hook_problems as hook_problems

logger = logging.getLogger(__name__)

RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]
# Takes one decrypted RTP packet as bytes; runs inside the socket's read callback.
RawRtpHandler = Callable[[bytes], None]


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
            _drain_per_wakeup(protocol)

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
            receiver = self._router.route_rtp(RoutedPacket(ssrc, data[1] & 0x7F))
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

    @property
    def connected(self) -> bool:
        return self._transport._state is State.CONNECTED

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
        transport = getattr(pair, "protocol", None)
        transport = getattr(transport, "transport", None)
        if transport is None:
            return False
        self._pair, self._address = pair, pair.remote_addr
        self._sendto = _direct_sendto(transport)
        return True


def _direct_sendto(transport) -> Callable[[bytes, tuple], None]:  # noqa: ANN001
    """The socket's own sendto, without the checks of asyncio's datagram transport
    (a tenth of the relay's time per packet); what the socket does not take at once
    (a full buffer, an ICMP error) goes through the transport as before."""
    sock = getattr(transport, "_sock", None)
    if sock is None:
        return transport.sendto
    fallback = transport.sendto

    def sendto(data: bytes, address: tuple) -> None:
        try:
            sock.sendto(data, address)
        except OSError:
            fallback(data, address)
    return sendto


def _drain_per_wakeup(protocol) -> None:  # noqa: ANN001
    """Read every datagram waiting on a socket when it becomes readable, not one per
    event-loop turn as asyncio's datagram transport does: under load a socket holds a
    burst of packets (a video frame is several), and each turn of the loop costs about
    as much as forwarding one of them."""
    transport = protocol.transport
    sock = getattr(transport, "_sock", None)
    loop = getattr(transport, "_loop", None)
    if sock is None or not hasattr(loop, "_add_reader") or transport.is_closing():
        return
    recvfrom, received = sock.recvfrom, protocol.datagram_received

    def drain() -> None:
        for _ in range(64):  # then let the other sockets have their turn
            try:
                data, address = recvfrom(_LARGEST_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                protocol.error_received(error)
                return
            received(data, address)

    transport.pause_reading()
    loop._add_reader(sock.fileno(), drain)  # removed again when the transport closes


# DTLS records and media stay below the path MTU; this also covers local loopback.
_LARGEST_DATAGRAM = 65535


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
