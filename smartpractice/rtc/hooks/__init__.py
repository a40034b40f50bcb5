"""The private aiortc entry points the relay depends on, in one place.

aiortc offers no public packet-level API, so the relay replaces a few private
methods on individual receiver and sender instances and reads a few private
attributes. Every access to aiortc's (and aioice's) internals in the relay goes
through this package, and ``check_hooks()`` (guard.py; called when a Relay is made,
and by tests/test_relay.py) fails loudly when the installed version no longer has them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket, HeaderExtensionsMap, RtcpSrPacket, RtpPacket

from . import srtp
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
            rtp_input = state["input"] = RtpInput.of(transport)
            rtp_input.add(receiver, on_rtp)

    async def stop() -> None:
        if state["input"] is not None:
            state["input"].remove(receiver)
            receiver.transport._unregister_rtp_receiver(receiver)

    async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        # Only reached if a packet took aiortc's own path after all.
        on_rtp(packet.serialize(receiver.transport._rtp_header_extensions_map))

    # Deliberate replacements of aiortc's methods on this one instance (module docstring);
    # on_rtcp is any coroutine function, where aiortc declares a bound method.
    receiver.receive = receive  # type: ignore[method-assign]
    receiver.stop = stop  # type: ignore[method-assign]
    receiver._handle_rtp_packet = handle_rtp  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign,assignment]


class RtpInput:
    """SRTP packets of one DTLS transport, decrypted and dispatched where the
    datagram arrives.

    aiortc queues every datagram for the DTLS transport's reader task, which
    decrypts, parses into an RtpPacket and awaits a chain of coroutines; per
    forwarded packet that was most of the relay's CPU. Here the ICE connection's
    sockets are read by the relay itself when they become readable: every datagram
    waiting (recvmmsg, SRTP decrypted in C, srtp.py), RTP handed to its receiver's
    handler synchronously, DTLS and RTCP queued for aiortc and STUN passed to aioice
    as before. Installed once per transport; receivers add themselves.
    """

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._router = transport._rtp_router
        self._handlers: dict[object, RawRtpHandler] = {}
        self._by_ssrc: dict[int, RawRtpHandler] = {}
        self._session: object = None  # the pylibsrtp session self._session_address is of
        self._session_address = 0
        self.failed = 0  # packets a handler raised on
        connection = transport.transport._connection
        self._queue_put = connection._queue.put_nowait
        # Deliberate: aioice hands every datagram that is not STUN to this method.
        connection.data_received = self._data_received  # type: ignore[method-assign]
        # ICE has finished gathering when receivers start: these are all the sockets. A
        # TURN allocation's datagrams come out of aioice's TURN client instead, through
        # data_received above.
        for protocol in connection._protocols:
            if hasattr(protocol.transport, "_sock"):
                self._read_itself(protocol)

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

    def _read_itself(self, protocol) -> None:  # noqa: ANN001
        """In place of asyncio's datagram transport, which reads one datagram per turn
        of the event loop (a turn costs about as much as forwarding a packet) and hands
        it to aioice, which tries to parse it as STUN first."""
        transport = protocol.transport
        sock, loop = transport._sock, transport._loop
        stun, component = protocol.datagram_received, protocol.local_candidate.component
        receive, media, dispatch = srtp.receive, self._data_received, self._dispatch
        fd = sock.fileno()

        def read() -> None:
            session = self._transport._rx_srtp
            if session is not self._session:
                self._session, self._session_address = session, srtp.session_address(session)
            try:
                datagrams = receive(fd, self._session_address)
            except OSError as error:
                protocol.error_received(error)
                return
            decrypted = self._session_address != 0
            for datagram in datagrams:
                if isinstance(datagram, bytes):  # RTP
                    if decrypted:
                        dispatch(datagram)
                    else:  # before the keys: the stock way
                        media(datagram, component)
                    continue
                data, address = datagram
                # RFC 7983: 128-191 is RTP or RTCP; STUN starts with 0 or 1.
                if data and 127 < data[0] < 192:
                    media(data, component)
                else:
                    stun(data, address)

        transport.pause_reading()
        loop._add_reader(fd, read)  # removed again when the transport closes

    def _data_received(self, data: bytes, component: int) -> None:
        # RTCP packet types are 192-208 (as is_rtcp); RTP before the keys are known
        # and RTCP go the stock way.
        session = self._transport._rx_srtp
        if (session is None or len(data) < 12 or not 127 < data[0] < 192
                or 191 < data[1] < 209):
            self._queue_put((data, component))
            return
        try:
            data = session.unprotect(data)
        except (ValueError, pylibsrtp.Error):  # ValueError: longer than pylibsrtp's buffer
            return
        self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        ssrc = int.from_bytes(data[8:12], "big")
        handler = self._by_ssrc.get(ssrc)
        if handler is None:
            # route_rtp reads only a packet's ssrc and payload_type (guard.py checks it),
            # so no RtpPacket is parsed for it.
            receiver = self._router.route_rtp(
                RoutedPacket(ssrc, data[1] & 0x7F))  # type: ignore[arg-type]
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
    ``RTCDtlsTransport._send_rtp`` does, without its three coroutine layers; RTP
    in C (srtp.py), without asyncio's datagram transport."""

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._nominated = transport.transport._connection._nominated
        self._pair: object = None  # aioice's nominated CandidatePair we send on
        self._socket: socket.socket | None = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None
        self._address: tuple[str, int] | None = None
        self._sockaddr: bytes | None = None  # the same address for srtp.send_rtp
        self._session: object = None
        self._session_address = 0
        self.dropped = 0  # RTP packets not sent: not connected (yet or any more), no path

    @property
    def connected(self) -> bool:
        return self._transport._state is State.CONNECTED

    def send_rtp(self, data: bytes) -> None:
        transport = self._transport
        if transport._state is not State.CONNECTED:
            self.dropped += 1  # not yet, or going away: aiortc would raise ConnectionError
            return
        pair = self._nominated.get(1)
        if pair is not self._pair and not self._use(pair):
            self.dropped += 1  # connected, but no nominated pair to send on yet
            return
        session = transport._tx_srtp
        sock, sockaddr = self._socket, self._sockaddr
        # A packet SRTP will not protect (too long, an index too old) is one lost packet; let
        # through, the error would end aiortc's loop and with it the subscriber's connection.
        try:
            if sock is None or sockaddr is None:  # a zoned IPv6 address, a TURN allocation
                if self._sendto is None:
                    self.dropped += 1
                else:
                    self._send_slowly(session.protect(data))
                return
            if session is not self._session:
                self._session, self._session_address = session, srtp.session_address(session)
            # fileno() is -1 once the socket is closed: never a number reused meanwhile.
            unsent = srtp.send_rtp(sock.fileno(), self._session_address, data, sockaddr)
        except (ValueError, pylibsrtp.Error):
            self.dropped += 1
            return
        if unsent is not None:  # a full buffer, an ICMP error: asyncio's way
            self._send_slowly(unsent)

    def _send_slowly(self, protected: bytes) -> None:
        """Through asyncio's transport, which queues, resolves and relays via TURN."""
        if self._sendto is None or self._address is None:
            self.dropped += 1
            return
        self._sendto(protected, self._address)

    def send_rtcp(self, data: bytes) -> None:
        transport = self._transport
        if transport._state is not State.CONNECTED:
            return
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if not self._use(pair):
                return
        if self._sendto is not None and self._address is not None:
            self._sendto(transport._tx_srtp.protect_rtcp(data), self._address)

    def _use(self, pair) -> bool:  # noqa: ANN001
        transport = getattr(pair, "protocol", None)
        transport = getattr(transport, "transport", None)
        if transport is None:
            return False
        self._pair, self._address = pair, pair.remote_addr
        # A TURN allocation's transport has no socket of its own: it sends through coturn.
        self._sendto, self._socket = transport.sendto, getattr(transport, "_sock", None)
        try:
            self._sockaddr = None if self._socket is None else srtp.sockaddr(*pair.remote_addr[:2])
        except ValueError:  # an IPv6 address with a zone: asyncio resolves it
            self._sockaddr = None
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
