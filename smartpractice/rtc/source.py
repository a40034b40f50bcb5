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
from struct import Struct

from aiortc import RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
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
    pack_remb_fci,
)

from . import hooks
from .forwarding import Forward
from .keyframes import KeyframeRequests
from .rtp_header import ABS_SEND_TIME, AUDIO_LEVEL
from .statistics import IncomingStream

REMB_INTERVAL = 1.0

_HEADER = Struct("!BBHLL")
_EXTENSION_HEADER = Struct("!HH")


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
        self.nacks_sent = 0
        self.retransmissions_received = 0  # RTX packets from the publisher
        self.payload_bytes_received = 0  # RTP payloads, repairs included (metrics)
        # Unreadable packets: a header cut short, or a payload type not negotiated.
        self.packets_malformed = 0
        self.remb_sent: int | None = None
        self._output: hooks.RtpOutput | None = None
        self._rtcp_ssrc = rtcp_ssrc
        self._names: dict[int, str] = {}  # media payload type -> codec name
        self._clock_rates: dict[int, int] = {}
        self._rtx_apt: dict[int, int] = {}  # RTX payload type -> the one it repairs
        self._rtx_ssrcs: dict[int, int] = {}
        self._abs_send_time_id = 0
        self._audio_level_id = 0
        self._media_ssrc: int | None = None
        self._codec_name: str | None = None
        self._stream: IncomingStream | None = None
        self._keyframes = KeyframeRequests(self)
        self._last_remb = -REMB_INTERVAL
        self._reports: asyncio.Task[None] | None = None
        self.receiver = receiver
        hooks.take_over_receiver_raw(receiver, self._handle_rtp, self._handle_rtcp,
                                     self._configure)

    @property
    def keyframe_requests_sent(self) -> int:
        return self._keyframes.sent

    @property
    def codec_name(self) -> str | None:
        return self._codec_name

    def _configure(self, parameters: RTCRtpReceiveParameters) -> None:
        self._output = hooks.RtpOutput(self.receiver.transport)
        for codec in parameters.codecs:
            payload_type = codec.payloadType
            assert payload_type is not None  # unset only in codec preferences, not here
            if is_rtx(codec):
                repaired = codec.parameters.get("apt")  # an int in aiortc's SDP parser
                if isinstance(repaired, int):
                    self._rtx_apt[payload_type] = repaired
            else:
                # codec.name is a computed property; looked up once, not per packet
                self._names[payload_type] = codec.name
                self._clock_rates[payload_type] = codec.clockRate
        for encoding in parameters.encodings:
            if encoding.rtx:
                self._rtx_ssrcs[encoding.rtx.ssrc] = encoding.ssrc
        for extension in parameters.headerExtensions:
            if extension.uri == ABS_SEND_TIME:
                self._abs_send_time_id = extension.id
            elif extension.uri == AUDIO_LEVEL:
                self._audio_level_id = extension.id
        self._reports = asyncio.ensure_future(self._send_receiver_reports())

    def _handle_rtp(self, data: bytes) -> None:
        """One decrypted packet from the publisher, forwarded to every subscriber.

        The hottest function of the relay: the fixed header is read with one
        unpack, extension values are kept as the bytes they were sent as, and the
        payload is sliced once for all subscribers.
        """
        first, second, sequence_number, timestamp, ssrc = _HEADER.unpack_from(data)
        offset = 12 + 4 * (first & 0x0F)  # CSRCs are not forwarded
        end = len(data)
        if first & 0x20:  # padding, its length in the last byte
            end -= data[-1]
        abs_send_time = audio_level = None
        if first & 0x10:
            if offset + 4 > end:
                self.packets_malformed += 1
                return
            profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            start = offset + 4
            offset = start + 4 * words
            if offset <= end and (self._abs_send_time_id or self._audio_level_id):
                abs_send_time, audio_level = self._read_extensions(data, profile, start,
                                                                   offset)
        if offset > end:
            self.packets_malformed += 1
            return
        payload_type = second & 0x7F
        name = self._names.get(payload_type)
        if name is None:
            # A retransmission we asked for: restore the original packet.
            repaired = self._rtx_apt.get(payload_type)
            ssrc = self._rtx_ssrcs.get(ssrc, self._media_ssrc)
            if repaired not in self._names or ssrc is None or end - offset < 2:
                self.packets_malformed += 1
                return
            sequence_number = (data[offset] << 8) | data[offset + 1]
            self._repair(self._names[repaired], second >> 7, sequence_number, timestamp, ssrc,
                         abs_send_time, audio_level, data[offset + 2:end])
            return
        stream = self._stream
        if ssrc != self._media_ssrc or stream is None:
            self._media_ssrc = ssrc
            self.clock_rate = self._clock_rates[payload_type]
            stream = self._stream = IncomingStream(self.clock_rate,
                                                   track_losses=self.kind == "video")
        self._codec_name = name
        self.packets_received += 1
        self.payload_bytes_received += end - offset
        # add() reports new losses only on a stream that tracks them (missing is a set).
        if stream.add(sequence_number, timestamp, time.time()) and stream.missing is not None:
            self.request_retransmission(sorted(stream.missing))
        payload = data[offset:end]
        marker = second >> 7
        for forward in self.forwards:
            forward.forward(name, marker, sequence_number, timestamp, ssrc,
                            abs_send_time, audio_level, payload)
        keyframes = self._keyframes
        if keyframes.watching:
            keyframes.watch(name, payload)

    def _repair(self, codec_name: str, marker: int, sequence_number: int, timestamp: int,
                ssrc: int, abs_send_time: bytes | None, audio_level: int | None,
                payload: bytes) -> None:
        """A packet the publisher sent again, asked for by the relay or for one
        subscriber: each forward decides whether it belongs in its stream."""
        if ssrc != self._media_ssrc or self._stream is None:
            return  # of a stream that has since restarted
        self.packets_received += 1
        self.retransmissions_received += 1
        self.payload_bytes_received += len(payload)
        self._stream.add(sequence_number, timestamp, time.time())
        for forward in self.forwards:
            forward.repair(codec_name, marker, sequence_number, timestamp, ssrc,
                           abs_send_time, audio_level, payload)

    def _read_extensions(self, data: bytes, profile: int, start: int,
                         stop: int) -> tuple[bytes | None, int | None]:
        """abs-send-time (3 bytes as sent) and the audio level byte, RFC 8285."""
        abs_send_time = audio_level = None
        abs_send_time_id, audio_level_id = self._abs_send_time_id, self._audio_level_id
        one_byte = profile == 0xBEDE
        if not one_byte and profile & 0xFFF0 != 0x1000:
            return None, None
        position = start
        while position < stop:
            byte = data[position]
            if byte == 0:  # padding between elements
                position += 1
                continue
            if one_byte:
                element_id, length = byte >> 4, (byte & 0x0F) + 1
                position += 1
            else:
                if position + 1 >= stop:
                    break
                element_id, length = byte, data[position + 1]
                position += 2
            if position + length > stop:
                break
            if element_id == abs_send_time_id and length == 3:
                abs_send_time = data[position:position + 3]
            elif element_id == audio_level_id and length >= 1:
                audio_level = data[position]
            position += length
        return abs_send_time, audio_level

    async def _handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == self._media_ssrc:
            info = packet.sender_info
            self.clock_mapping = (info.ntp_timestamp, info.rtp_timestamp)
            self._last_report = ((info.ntp_timestamp >> 16) & 0xFFFFFFFF, time.monotonic())

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, throttled and never dropped (keyframes.py)."""
        self._keyframes.request()

    @property
    def waiting_for_keyframe(self) -> list[Forward]:
        """Subscribers that get nothing until the next keyframe."""
        return [f for f in self.forwards if f.waiting_for_keyframe]

    def send_keyframe_request(self) -> bool:
        """A PLI to the publisher now; False before its first packet (no SSRC to name)."""
        if self._media_ssrc is None:
            return False
        self._send(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self._rtcp_ssrc,
                                  media_ssrc=self._media_ssrc))
        return True

    def request_retransmission(self, sequence_numbers: list[int]) -> None:
        if self._media_ssrc is None or not sequence_numbers:
            return
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=self._rtcp_ssrc,
                               media_ssrc=self._media_ssrc)
        nack.lost = sequence_numbers
        self.nacks_sent += 1
        self._send(nack)

    def update_bitrate(self) -> None:
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
        self._send(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=self._rtcp_ssrc, media_ssrc=0,
                                  fci=pack_remb_fci(bitrate, [self._media_ssrc])))

    async def _send_receiver_reports(self) -> None:
        # The publisher's loss-based rate control and RTT need receiver reports;
        # aiortc's receiver would send them, but its loop is not started here.
        while True:
            await asyncio.sleep(0.5 + random.random())
            stream = self._stream
            if stream is None or stream.max_seq is None or self._media_ssrc is None:
                continue
            # LSR/DLSR (RFC 3550 section 6.4.1) let the publisher measure its RTT.
            lsr, dlsr = 0, 0
            if self._last_report is not None:
                lsr = self._last_report[0]
                dlsr = int((time.monotonic() - self._last_report[1]) * 65536) & 0xFFFFFFFF
            report = RtcpReceiverInfo(
                ssrc=self._media_ssrc, fraction_lost=stream.fraction_lost(),
                packets_lost=stream.packets_lost, highest_sequence=stream.max_seq,
                jitter=stream.jitter, lsr=lsr, dlsr=dlsr)
            self._send(RtcpRrPacket(ssrc=self._rtcp_ssrc, reports=[report]))

    def _send(self, packet: AnyRtcpPacket) -> None:
        if self._output is not None:
            self._output.send_rtcp(bytes(packet))

    async def close(self) -> None:
        self._keyframes.close()
        if self._reports is not None:
            self._reports.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reports
        self.forwards.clear()
