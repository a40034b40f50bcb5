"""A track one participant publishes, as received by the relay.

Packets are handed to every subscriber's Forward without depayloading or
decoding. Feedback travels the other way: keyframe requests and NACKs of the
subscribers, losses on the incoming path, and the smallest REMB.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from aiortc import RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from . import hooks
from .forwarding import Forward

# RFC 4585 leaves the rate to the application; one PLI per source per interval
# keeps a room of subscribers joining at once from flooding the publisher.
KEYFRAME_REQUEST_INTERVAL = 0.5
REMB_INTERVAL = 1.0


class Source:
    def __init__(self, publisher_id: str, kind: str, receiver: RTCRtpReceiver,
                 rtcp_ssrc: int) -> None:
        self.publisher_id = publisher_id
        self.kind = kind
        self.forwards: list[Forward] = []
        self.clock_rate = 90000 if kind == "video" else 48000
        # (NTP, RTP timestamp) from the publisher's latest sender report
        self.clock_mapping: tuple[int, int] | None = None
        self._last_report: tuple[int, float] | None = None  # (LSR, arrival)
        self.packets_received = 0
        self.keyframe_requests_sent = 0
        self.nacks_sent = 0
        self.remb_sent: int | None = None
        self._transport = receiver.transport
        self._rtcp_ssrc = rtcp_ssrc
        self._codecs: dict[int, RTCRtpCodecParameters] = {}
        self._names: dict[int, str] = {}
        self._rtx_ssrcs: dict[int, int] = {}
        self._media_ssrc: int | None = None
        self._codec_name: str | None = None
        self._losses = NackGenerator() if kind == "video" else None
        self._statistics: StreamStatistics | None = None
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        self._last_remb = -REMB_INTERVAL
        self._reports: asyncio.Task[None] | None = None
        self.receiver = receiver
        hooks.take_over_receiver(receiver, self._handle_rtp, self._handle_rtcp,
                                 self._configure)

    @property
    def codec_name(self) -> str | None:
        return self._codec_name

    def _configure(self, parameters: RTCRtpReceiveParameters) -> None:
        self._codecs = {codec.payloadType: codec for codec in parameters.codecs}
        # codec.name is a computed property; looked up once, not per packet
        self._names = {codec.payloadType: codec.name for codec in parameters.codecs}
        for encoding in parameters.encodings:
            if encoding.rtx:
                self._rtx_ssrcs[encoding.rtx.ssrc] = encoding.ssrc
        self._reports = asyncio.ensure_future(self._send_receiver_reports())

    async def _handle_rtp(self, packet: RtpPacket) -> None:
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        if is_rtx(codec):
            # A retransmission we asked for: restore the original packet.
            apt = codec.parameters.get("apt")
            original_ssrc = self._rtx_ssrcs.get(packet.ssrc, self._media_ssrc)
            if apt not in self._codecs or original_ssrc is None or len(packet.payload) < 2:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = self._codecs[apt]
        if packet.ssrc != self._media_ssrc:
            self._media_ssrc = packet.ssrc
            self._statistics = StreamStatistics(codec.clockRate)
            self.clock_rate = codec.clockRate
            if self._losses is not None:
                self._losses = NackGenerator()
        name = self._names[packet.payload_type]
        self._codec_name = name
        self.packets_received += 1
        self._statistics.add(packet)
        if self._losses is not None and self._losses.add(packet):
            await self.request_retransmission(sorted(self._losses.missing))
        for forward in self.forwards:
            await forward.forward(packet, name)

    async def _handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == self._media_ssrc:
            info = packet.sender_info
            self.clock_mapping = (info.ntp_timestamp, info.rtp_timestamp)
            self._last_report = ((info.ntp_timestamp >> 16) & 0xFFFFFFFF, time.monotonic())

    async def request_keyframe(self) -> None:
        now = time.monotonic()
        if self._media_ssrc is None or now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL:
            return
        self._last_keyframe_request = now
        self.keyframe_requests_sent += 1
        await self._send(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self._rtcp_ssrc,
                                        media_ssrc=self._media_ssrc))

    async def request_retransmission(self, sequence_numbers: list[int]) -> None:
        if self._media_ssrc is None or not sequence_numbers:
            return
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=self._rtcp_ssrc,
                               media_ssrc=self._media_ssrc)
        nack.lost = sequence_numbers
        self.nacks_sent += 1
        await self._send(nack)

    async def update_bitrate(self) -> None:
        """Pass the smallest estimate of the subscribers upstream: the publisher
        has one encoding, so the weakest subscriber sets its rate."""
        estimates = [f.bitrate for f in self.forwards if f.bitrate is not None]
        if not estimates or self._media_ssrc is None:
            return
        bitrate = min(estimates)
        now = time.monotonic()
        lower = self.remb_sent is None or bitrate < self.remb_sent
        if bitrate == self.remb_sent or (not lower and now - self._last_remb < REMB_INTERVAL):
            return
        self._last_remb = now
        self.remb_sent = bitrate
        await self._send(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=self._rtcp_ssrc,
                                        media_ssrc=0,
                                        fci=pack_remb_fci(bitrate, [self._media_ssrc])))

    async def _send_receiver_reports(self) -> None:
        # The publisher's loss-based rate control and RTT need receiver reports;
        # aiortc's receiver would send them, but its loop is not started here.
        while True:
            await asyncio.sleep(0.5 + random.random())
            stats = self._statistics
            if stats is None or self._media_ssrc is None:
                continue
            # LSR/DLSR (RFC 3550 section 6.4.1) let the publisher measure its RTT.
            lsr, dlsr = 0, 0
            if self._last_report is not None:
                lsr = self._last_report[0]
                dlsr = int((time.monotonic() - self._last_report[1]) * 65536) & 0xFFFFFFFF
            report = RtcpReceiverInfo(
                ssrc=self._media_ssrc, fraction_lost=stats.fraction_lost,
                packets_lost=stats.packets_lost, highest_sequence=stats.max_seq,
                jitter=stats.jitter, lsr=lsr, dlsr=dlsr)
            await self._send(RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=[report]))

    async def _send(self, packet: AnyRtcpPacket) -> None:
        await hooks.send_packet(self._transport, bytes(packet))

    async def close(self) -> None:
        if self._reports is not None:
            self._reports.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reports
        self.forwards.clear()
