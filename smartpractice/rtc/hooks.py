"""The private aiortc entry points the relay depends on, in one place.

aiortc offers no public packet-level API, so the relay replaces a few private
methods on individual receiver and sender instances. Everything that touches
aiortc internals lives here, and ``check_hooks()`` (called when a Relay is made,
and by tests/test_relay.py) fails loudly when the pinned version moved them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket, RtpPacket

# Must equal the pin in pyproject.toml: the hooks below were written against it.
AIORTC_VERSION = "1.16.0"

RtpHandler = Callable[[RtpPacket], Awaitable[None]]
RtcpHandler = Callable[[AnyRtcpPacket], Awaitable[None]]


class HookMismatch(RuntimeError):
    """The installed aiortc no longer has the private methods the relay replaces."""


def check_hooks() -> None:
    if aiortc.__version__ != AIORTC_VERSION:
        raise HookMismatch(f"relay hooks were written for aiortc {AIORTC_VERSION}, "
                           f"found {aiortc.__version__}")
    expected = {
        RTCRtpReceiver: ("receive", "stop", "_handle_rtp_packet", "_handle_rtcp_packet",
                         "_set_rtcp_ssrc"),
        RTCRtpSender: ("_handle_rtcp_packet", "_send_rtcp", "send"),
        RTCRtpTransceiver: ("_offerDirection",),
        RTCDtlsTransport: ("_send_rtp", "_register_rtp_receiver",
                           "_unregister_rtp_receiver", "_rtp_header_extensions_map"),
    }
    for cls, names in expected.items():
        for name in names:
            if not hasattr(cls, name) and name not in _instance_attributes(cls):
                raise HookMismatch(f"aiortc {cls.__name__}.{name} is gone")
    # The receiver must still start its decoder inside receive(), which is what
    # replacing receive() avoids.
    if "decoder_worker" not in inspect.getsource(RTCRtpReceiver.receive):
        raise HookMismatch("RTCRtpReceiver.receive no longer starts the decoder")


def _instance_attributes(cls: type) -> str:
    return inspect.getsource(cls.__init__)


def take_over_receiver(receiver: RTCRtpReceiver, on_rtp: RtpHandler,
                       on_rtcp: RtcpHandler,
                       on_parameters: Callable[[RTCRtpReceiveParameters], None]) -> None:
    """Route a receiver's packets to the relay; its decoder thread is never started.

    Must run before the peer connection calls ``receive()``, i.e. between
    setRemoteDescription and setLocalDescription.
    """
    transport = receiver.transport
    state = {"started": False}

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        if not state["started"]:
            state["started"] = True
            on_parameters(parameters)
            transport._register_rtp_receiver(receiver, parameters)

    async def stop() -> None:
        if state["started"]:
            transport._unregister_rtp_receiver(receiver)

    async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        await on_rtp(packet)

    receiver.receive = receive  # type: ignore[method-assign]
    receiver.stop = stop  # type: ignore[method-assign]
    receiver._handle_rtp_packet = handle_rtp  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]


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


def header_extensions(transport: RTCDtlsTransport):  # noqa: ANN201
    return transport._rtp_header_extensions_map


async def send_packet(transport: RTCDtlsTransport, data: bytes) -> None:
    """Send one serialized RTP or RTCP packet; SRTP protection happens inside."""
    try:
        await transport._send_rtp(data)
    except ConnectionError:
        pass  # the subscriber is going away; its detach cleans up
